"""`vigil serve` (the HTTP service), `vigil integration key NAME` and `vigil changes`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from app.cli.framework import EXIT_OK, Commands, Context, UsageError
from data.domain import REQUEST_TIMEOUT, parse_duration


def cmd_serve(ctx: Context) -> int:
    """The service comes from the entry point (`app.main`): this face does not import it."""
    if ctx.run_server is None:
        raise UsageError("vigil serve: the HTTP service is not available here")
    port: int = ctx.args.port
    if not 0 < port < 65536:
        raise UsageError(f"vigil serve: --port: expected 1-65535, got {port}")
    cert, key = ctx.args.tls_cert, ctx.args.tls_key
    if bool(cert) != bool(key):
        raise UsageError("vigil serve: --tls-cert and --tls-key go together")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if path and not Path(path).is_file():
            raise UsageError(f"vigil serve: {option}: no such file {path!r}")
    try:
        request_within = parse_duration(ctx.args.request_timeout, REQUEST_TIMEOUT)
    except ValueError as exc:
        raise UsageError(f"vigil serve: --request-timeout: {exc}") from None
    return ctx.run_server(
        ctx.db,
        ctx.clock,
        ctx.actor,
        host=ctx.args.host,
        port=port,
        engine=not ctx.args.no_engine,
        tls=(cert, key) if cert and key else None,
        request_within=request_within.total_seconds(),
    )


def cmd_integration_key(ctx: Context) -> int:
    from app.services.integrations import new_key

    key = new_key(ctx.db, ctx.clock, ctx.actor, ctx.args.name)
    ctx.emit(
        {"integration": ctx.args.name, "key": key},
        f"New key of integration {ctx.args.name} (shown once; the old key no longer works):\n{key}",
    )
    return EXIT_OK


def cmd_changes(ctx: Context) -> int:
    from sqlmodel import col, select

    from app.core.times import parse_instant
    from data.intake import ChangeNote

    query = select(ChangeNote).order_by(col(ChangeNote.received_at).desc()).limit(ctx.args.limit)
    if ctx.args.since:
        since: datetime = parse_instant("--since", ctx.args.since)
        query = query.where(col(ChangeNote.received_at) >= since)
    with ctx.db.read() as session:
        notes = list(session.exec(query).all())
    rows: list[dict[str, Any]] = [
        {
            "received_at": note.received_at.isoformat(),
            "happened_at": note.happened_at.isoformat() if note.happened_at else None,
            "integration": note.integration,
            "source": note.source,
            "summary": note.summary,
            "details": note.details,
            "links": note.links,
        }
        for note in notes
    ]
    lines = [
        f"{row['received_at'][:19]}Z  {row['integration'] or '-'}  {row['summary']}"
        + (f"  ({row['source']})" if row["source"] else "")
        for row in rows
    ]
    ctx.emit(rows, "\n".join(lines) if lines else "No change notes.")
    return EXIT_OK


def register(commands: Commands) -> None:
    p = commands.add("serve", cmd_serve)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument(
        "--no-engine", action="store_true", help="without the in-process escalation engine"
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key")
    p.add_argument(
        "--request-timeout",
        metavar="DURATION",
        default="10s",
        help="what a sender has for a request's head, and again for its body; a connection "
        "that brings neither in time is closed (1s-5m, default 10s)",
    )

    group = commands.group("integration")
    p = group.add("key", cmd_integration_key, "make a new key for an integration; shown once")
    p.add_argument("name", metavar="NAME")

    p = commands.add("changes", cmd_changes)
    p.add_argument("--since", metavar="ISO", help="only notes received since then")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")

"""`vigil intake`: events as a JSON array or JSON lines, in any format the intake registry
knows (its own module, so other case commands never load the formats)."""

from __future__ import annotations

import sys
from pathlib import Path

from app.cli.framework import EXIT_OK, EXIT_USAGE, Commands, Context
from app.core.errors import BadInput, NothingToDo


def cmd_intake(ctx: Context) -> int:
    from app.intake.store import store_intake

    source = ctx.args.file
    if source in (None, "-"):
        text = sys.stdin.read()
    else:
        try:
            text = Path(source).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise BadInput("FILE", f"no such file {source!r}") from None
        except OSError as exc:  # a folder, no permission, a name too long...
            raise BadInput("FILE", f"cannot read {source!r}: {exc.strerror or exc}") from None
    outcome = store_intake(ctx.cases, ctx.actor, text, ctx.args.format)
    if outcome.is_empty():
        raise NothingToDo("vigil intake: the input holds no events")
    ctx.emit(outcome.as_json(), outcome.as_text())
    for error in outcome.errors:
        ctx.err.write(f"vigil intake: {error.position}: {error.reason}\n")
    return EXIT_USAGE if outcome.errors else EXIT_OK


def register(commands: Commands) -> None:
    from app.intake.registry import format_names, formats

    p = commands.add("intake", cmd_intake)
    p.add_argument(
        "file", nargs="?", metavar="FILE", help="a file, or - for standard input (default)"
    )
    p.add_argument(
        "--format",
        default="auto",
        choices=format_names(),
        help="auto (each event by its shape), or one of: "
        + "; ".join(f"{fmt.name} ({fmt.help})" for fmt in formats()),
    )

"""`vigil intake`: events as a JSON array or JSON lines, in any format the intake registry
knows (its own module, so other case commands never load the formats).

Each event is stored, and its new case paged, in a transaction of its own, and its result
is printed as soon as that commits (a JSON line with `--json`), so a caller whose intake
dies knows what was stored. SIGINT and SIGTERM stop it after the event under way; the same
input given again resumes where it stopped.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from app.cli.framework import EXIT_OK, EXIT_USAGE, Commands, Context
from app.cli.render import json_output, text_output
from app.core.errors import BadInput, NothingToDo

STOPPED_BY = {signal.SIGINT: 130, signal.SIGTERM: 143}
"""The exit code of a run stopped by each signal: 128 and the signal's number, as shells
report a command the signal ended."""


def cmd_intake(ctx: Context) -> int:
    from app.intake.store import BatchRun, EventResult, store_intake

    data = _read_input(ctx.args.file)

    def said(result: EventResult) -> None:
        if ctx.as_json:
            ctx.out.write(json_output(result.as_json(), stream=True))
        else:
            ctx.out.write(text_output(result.as_text()))
        if result.outcome == "rejected":
            ctx.err.write(f"vigil intake: {result.position}: {result.detail}\n")
        ctx.out.flush()

    def resuming(run: BatchRun) -> None:
        ctx.err.write(
            f"vigil intake: resuming an earlier run of this input (batch {run.digest[:12]}): "
            f"{run.earlier} of {run.events} events were stored then and are not stored again\n"
        )

    with _stop_on_signals() as caught:
        run = store_intake(
            ctx.cases,
            ctx.actor,
            data,
            ctx.args.format,
            said=said,
            resuming=resuming,
            stop=lambda: bool(caught),
        )
    outcome = run.outcome
    for error in run.unreadable:
        ctx.err.write(f"vigil intake: {error.position}: {error.reason}\n")
    if run.stopped:
        name = signal.Signals(caught[0]).name
        ctx.err.write(
            f"vigil intake: stopped by {name} after {run.handled} of {run.events} events "
            f"({len(outcome.opened)} opened); give the same input again to go on\n"
        )
    elif outcome.is_empty():
        raise NothingToDo("vigil intake: the input holds no events")
    if ctx.as_json:  # the last line of the stream, one line like the others
        ctx.out.write(json_output(run.as_json(), stream=True))
    else:
        ctx.out.write(text_output(outcome.as_text()))
    if run.stopped:
        return STOPPED_BY[signal.Signals(caught[0])]
    return EXIT_USAGE if outcome.errors else EXIT_OK


def _read_input(source: str | None) -> bytes:
    if source in (None, "-"):
        stream = getattr(sys.stdin, "buffer", None)
        return stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
    try:
        return Path(source).read_bytes()
    except FileNotFoundError:
        raise BadInput("FILE", f"no such file {source!r}") from None
    except OSError as exc:  # a folder, no permission, a name too long...
        raise BadInput("FILE", f"cannot read {source!r}: {exc.strerror or exc}") from None


@contextmanager
def _stop_on_signals() -> Iterator[list[int]]:
    """SIGINT and SIGTERM ask the run to stop after the event under way (the list they
    fill is the request); the former handlers come back afterwards. Only the main thread
    may set handlers: elsewhere the signals keep their usual effect."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def request_stop(number: int, _frame: FrameType | None) -> None:
        caught.append(number)

    former = {number: signal.signal(number, request_stop) for number in STOPPED_BY}
    try:
        yield caught
    finally:
        for number, handler in former.items():
            signal.signal(number, handler)


def register(commands: Commands) -> None:
    from app.intake.registry import format_names, formats

    p = commands.add("intake", cmd_intake)
    p.epilog = (
        "Each event is stored, and a new case paged (step 1), in a transaction of its own; "
        "its result is printed as soon as that commits (with --json, one JSON line per "
        "event, then one for the batch). SIGINT or SIGTERM stops after the event under way "
        "with a count (exit 130 or 143). The same input given again after a run that "
        "stopped (a signal, kill -9, a full disk) resumes where it stopped: the input is "
        "known by the SHA-256 of its bytes, each event by its place in it, and no event is "
        "stored twice."
    )
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

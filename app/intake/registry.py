"""The intake formats, one module each, and how text becomes their events.

Each format module declares a `FORMAT`: its name, a line of help, how to recognise one of
its payloads, and its parser; `auto` tries the fallback (our own format, which takes
whatever the others do not claim) last. `vigil intake --format` takes its choices and help
from here, so a new format is one module and one line below.

Reading accepts a JSON array, a single JSON object, or JSON lines. CSEA is always
sensitive, whatever the sender says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from app.intake import alertmanager, grafana, pagerduty, vigil
from app.intake.events import (
    NO_DEFAULTS,
    ChangeEvent,
    IntakeBatch,
    IntakeDefaults,
    IntakeError,
    IntakeEvent,
    IntakeFormat,
    Outcome,
    not_an_object_error,
)

_JSON_SPACE = " \t\r\n"


def formats() -> tuple[IntakeFormat, ...]:
    """Every format, as `--format` lists them."""
    return (vigil.FORMAT, pagerduty.FORMAT, alertmanager.FORMAT, grafana.FORMAT)


def format_names() -> tuple[str, ...]:
    """The choices of `--format`: `auto`, then each format."""
    return ("auto", *(fmt.name for fmt in formats()))


def parse_intake(
    text: str, fmt: str = "auto", defaults: IntakeDefaults = NO_DEFAULTS
) -> IntakeBatch:
    """Parse a JSON array, a single JSON object or JSON lines of events in format `fmt`.

    `auto` decides per event, so one batch may mix formats. Raises ValueError only for an
    unknown `fmt`; problems with the events themselves come back in `errors`.
    """
    names = format_names()
    if fmt not in names:
        raise ValueError(f"format: expected one of {', '.join(names)}, got {fmt!r}")
    events: list[IntakeEvent | ChangeEvent] = []
    errors: list[IntakeError] = []
    for item in _read_items(text):
        outcomes = [item] if isinstance(item, IntakeError) else _parse_item(*item, fmt, defaults)
        for outcome in outcomes:
            if isinstance(outcome, IntakeError):
                errors.append(outcome)
            else:
                events.append(outcome)
    return IntakeBatch(events, errors)


# Reading the text into positioned JSON values.


def _read_items(text: str) -> Iterator[tuple[str, object] | IntakeError]:
    text = text.removeprefix("\ufeff")
    if not text.strip(_JSON_SPACE):
        return
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if _is_one_broken_document(text):
            yield IntakeError("input", f"not valid JSON: {_json_problem(exc, with_line=True)}")
        else:
            yield from _read_lines(text)
        return
    if isinstance(document, list):
        for index, value in enumerate(document, 1):
            yield f"event {index}", value
    else:
        yield "event 1", document


def _read_lines(text: str) -> Iterator[tuple[str, object] | IntakeError]:
    """JSON lines: a broken line is reported and the others still count."""
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip(_JSON_SPACE):
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            yield IntakeError(f"line {number}", f"not valid JSON: {_json_problem(exc)}")
        else:
            yield f"line {number}", value


def _is_one_broken_document(text: str) -> bool:
    """A pretty-printed array or object with a typo is one error, not one per line."""
    first = next(line for line in text.split("\n") if line.strip(_JSON_SPACE))
    try:
        json.loads(first)
    except (ValueError, RecursionError):
        opening = first.strip(_JSON_SPACE)
        return opening.startswith("[") or opening == "{"
    return False


def _json_problem(exc: ValueError | RecursionError, with_line: bool = False) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, json.JSONDecodeError):
        where = f"line {exc.lineno}, column {exc.colno}" if with_line else f"column {exc.colno}"
        # The decoder's own wording sometimes ends in "at", expecting the place to follow.
        return f"{exc.msg.removesuffix(' at')} at {where}"
    return str(exc)


# Dispatching each value to its format.


def parse_value(
    value: object, fmt: str, defaults: IntakeDefaults = NO_DEFAULTS, position: str = "event"
) -> list[Outcome]:
    """One JSON value already read (an HTTP request's body) in format `fmt`."""
    return _parse_item(position, value, fmt, defaults)


def _parse_item(position: str, value: object, fmt: str, defaults: IntakeDefaults) -> list[Outcome]:
    if not isinstance(value, dict):
        return [not_an_object_error(position, value)]
    try:
        return _format_of(value, fmt).parse(position, value, defaults)
    except RecursionError:
        return [IntakeError(position, "nested too deeply")]


def _format_of(value: dict[str, Any], fmt: str) -> IntakeFormat:
    candidates = formats()
    if fmt != "auto":
        return next(f for f in candidates if f.name == fmt)
    return next(f for f in sorted(candidates, key=lambda f: f.fallback) if f.looks_like(value))

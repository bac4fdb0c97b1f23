"""Bad input, generated: `vigil intake`, the team file and the arguments of every command.

Whatever comes in, no traceback reaches a person: every command ends with an exit code of
the contract (0, 1 or 2) and, when it refuses, a sentence on stderr. A bad intake event is
reported by its position and never costs a good one; a bad team file changes nothing and
names the key path at fault, a good one round-trips through `team export`. After every
example the database passes the consistency check over all tables.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

import app.cli.main as cli
import app.engine.runner as engine_module
from app.core.clock import FakeClock
from app.delivery.webhook import process_webhook_outbox
from data import schema
from data.db import Database, make_engine
from data.domain import Category
from data.models import Case, Responder
from tests.consistency import assert_consistent
from tests.factories import (
    TEAM_FILE,
    FullDesk,
    add_policy,
    add_responder,
    build_full_desk,
    cli_commands,
)

T = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
FUZZ = settings(
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is a failure in CI too
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def _quick_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """One parser and one schema lookup per test run: most of what a command costs."""
    monkeypatch.setattr(cli, "build_parser", functools.cache(cli.build_parser))
    monkeypatch.setattr(schema, "head_revision", functools.cache(schema.head_revision))


RAW_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""What a terminal would obey rather than show (tabs and line breaks aside)."""


def _run(url: str, who: str, *argv: str) -> tuple[int, str, str]:
    """A command as a person runs it; fails the test if anything but an exit code results."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--db", url, "--as", who, *argv], clock=FakeClock(T), out=out, err=err)
    assert code in (0, 1, 2), f"exit {code}"
    assert "Traceback" not in err.getvalue()
    if code != 0:
        assert err.getvalue().startswith("vigil"), f"a refusal without a sentence: {argv}"
    if not any(RAW_CONTROL.search(arg) for arg in argv):  # one's own input may echo back
        for said in (out.getvalue(), err.getvalue()):
            raw = RAW_CONTROL.search(said)
            assert raw is None, f"shown raw: {said[max(0, raw.start() - 60) : raw.end()]!r}"
    return code, out.getvalue(), err.getvalue()


# --- vigil intake ---------------------------------------------------------------------------

LINE_TEXT = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")),
    min_size=1,
    max_size=30,
).filter(lambda text: text.strip() == text and text != "")
"""A line prints as it is stored: no control, invisible, unassigned or private-use code
points, and its spaces are plain ones (other spaces are folded to them; `app.core.text`)."""
DETAILS = st.text(
    st.characters(exclude_categories=("Cc", "Cs")) | st.sampled_from("\n\t"), max_size=40
)
"""Free text may hold line breaks and tabs, not other control characters."""
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
UNKNOWN_KEYS = st.text(min_size=1).filter(
    lambda key: key not in {"action", "title", "category", "severity", "details", "policy",
                            "dedup_key", "sensitive", "alerts", "event_action", "routing_key",
                            "payload"}
)  # fmt: skip


@dataclass
class Batch:
    """Generated events, each with what it must come to."""

    events: list[Any] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    """`good` (a trigger that must be stored), `bad` (must be reported), `either`."""
    titles: dict[int, str] = field(default_factory=dict)
    keys: dict[int, str | None] = field(default_factory=dict)


_serial = count(1)


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    batch = Batch()
    run = next(_serial)
    keys = [f"k{run}-{n}" for n in range(3)]
    for index in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["good", "good", "bad", "bad", "closing"]))
        if kind == "good":
            title = f"{index}-{run} {draw(LINE_TEXT)}"
            event: Any = {
                "title": title,
                "category": draw(st.sampled_from([c.value for c in Category])),
                "severity": draw(st.sampled_from(["sev1", "sev4", 2, 3, "1"])),
            }
            key = draw(st.none() | st.sampled_from(keys))
            if key is not None:
                event["dedup_key"] = key
            if draw(st.booleans()):
                event["details"] = draw(DETAILS)
            if draw(st.booleans()):
                event["sensitive"] = draw(st.booleans())
            batch.titles[index], batch.keys[index] = title, key
            batch.kinds.append("good")
        elif kind == "closing":
            action = draw(st.sampled_from(["acknowledge", "resolve"]))
            event = {"action": action, "dedup_key": draw(st.sampled_from(keys))}
            batch.kinds.append("either")  # refused when no case is open under that key
        else:
            event = draw(
                st.one_of(
                    JSON_VALUES.filter(lambda value: not isinstance(value, dict)),
                    st.dictionaries(UNKNOWN_KEYS, JSON_VALUES, max_size=3),
                    st.fixed_dictionaries(
                        {"title": st.just("x"), "category": st.just("edr")},
                        optional={"severity": st.sampled_from([0, 5, "sev9", None, True])},
                    ),
                    st.fixed_dictionaries(
                        {
                            "title": st.sampled_from(["", "   ", "a\nb", "x" * 201]),
                            "category": st.just("other"),
                            "severity": st.just(3),
                        }
                    ),
                    st.fixed_dictionaries(
                        {
                            "title": st.just("x"),
                            "category": st.text().filter(lambda c: c not in set(Category)),
                            "severity": st.just(1),
                        }
                    ),
                    st.fixed_dictionaries(
                        {"title": st.just("x"), "category": st.just("edr"), "severity": st.just(1),
                         "policy": st.just("no-such-policy")}
                    ),
                )
            )  # fmt: skip
            batch.kinds.append("bad")
        batch.events.append(event)
    return batch


@pytest.fixture
def intake_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    db = Database.open(url)
    add_responder(db, "relay", "admin")
    add_responder(db, "ana")
    add_policy(db, "standard", [(300, ["user:ana"])], route=["default"])
    db.dispose()
    monkeypatch.chdir(tmp_path)
    return url


@settings(FUZZ, max_examples=25)
@given(batch=batches(), lines=st.booleans())
def test_intake_stores_every_good_event_and_names_every_bad_one(
    intake_desk: str, batch: Batch, lines: bool
) -> None:
    as_lines = lines and len(batch.events) > 1
    text = (
        "\n".join(json.dumps(event) for event in batch.events)
        if as_lines
        else json.dumps(batch.events)
    )
    Path("events.json").write_text(text)
    code, out, err = _run(intake_desk, "relay", "intake", "events.json", "--json")
    outcome = json.loads(out.splitlines()[-1])
    reported = {error["position"] for error in outcome["errors"]}
    for index, kind in enumerate(batch.kinds):
        position = f"line {index + 1}" if as_lines else f"event {index + 1}"
        if kind == "bad":
            assert position in reported, f"{batch.events[index]!r} was not reported"
            assert f"vigil intake: {position}: " in err
        if kind == "good":
            assert position not in reported, f"{batch.events[index]!r} was refused: {err}"
    assert code == (2 if reported else 0)
    db = Database(make_engine(intake_desk))
    try:
        with db.read() as session:
            stored = set(session.exec(select(Case.title)).all())
            keyed = set(
                session.exec(select(Case.dedup_key).where(col(Case.dedup_key).is_not(None)))
            )
        for index, title in batch.titles.items():
            key = batch.keys[index]
            assert title in stored or (key is not None and key in keyed), f"lost: {title!r}"
        assert_consistent(db)
    finally:
        db.dispose()


@settings(FUZZ, max_examples=30)
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_intake_of_anything_at_all_ends_in_a_sentence(intake_desk: str, text: str) -> None:
    Path("raw.txt").write_text(text, encoding="utf-8", errors="surrogateescape")
    _run(intake_desk, "relay", "intake", "raw.txt")


# --- the team file ----------------------------------------------------------------------


def _toml_string(text: str) -> str:
    escaped = json.dumps(text, ensure_ascii=False)  # escapes quotes, backslashes, controls
    return escaped.replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """A value as TOML (inline tables and arrays: one line each)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, repr(value))
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(document: dict[str, Any]) -> str:
    return "".join(
        f"{_toml_string(key)} = {toml_value(value)}\n" for key, value in document.items()
    )


TOML_VALUES = st.recursive(
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.dates()
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.sampled_from(
        ["5m", "0s", "-1h", "25:00", "08:00", "1d", "tue", "mon-fri", "schedule:primary",
         "user:nobody", "role:supervisor", "Mars/Base", "Australia/Sydney", "webhook",
         "https://x.example/hook", "ftp://x", "specialist", "admin", "2026-02-30"]
    ),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=5,
)  # fmt: skip


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _mutate(document: Any, path: tuple[Any, ...], how: str, value: Any, key: str) -> None:
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent[last], dict):
        parent[last][key] = value
    else:
        parent[last] = value


NEW_KEYS = st.sampled_from(["extra", "\r", "x\x1b[31m", "two\nlines"]) | st.text(max_size=8)
"""Keys added to a table: typos, and keys that would garble a terminal if shown raw."""
PLAUSIBLE: dict[str, list[Any]] = {
    "shift": ["8h", "12h", "1d", "7d"],
    "handoff": ["00:00", "07:45", "23:59"],
    "timezone": ["UTC", "Europe/Dublin", "America/Los_Angeles"],
    "role": ["specialist", "supervisor", "admin"],
    "delay": ["1m", "2h"],
    "repeat": [0, 1, 5],
    "days": [["mon"], ["sat", "sun"]],
    "hours": ["00:00-08:00", "22:00-06:00"],
    "name": ["Renamed Person", "renamed-thing"],
    "ack": ["1m"],
    "respond": ["3h"],
    "reason": ["", "cover"],
    "require_all": [True, False],
}
"""Values a team file may well hold for a key: they keep some examples valid."""


@st.composite
def team_documents(draw: st.DrawFn) -> dict[str, Any]:
    """The good team file with up to three of its values replaced (by a plausible value or
    anything at all), removed, or added to."""
    document = tomllib.loads(TEAM_FILE.read_text())
    for _ in range(draw(st.integers(0, 3))):
        paths = [path for path in _paths(document) if path]
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["replace", "plausible", "plausible", "delete", "add"]))
        key = next((step for step in reversed(path) if isinstance(step, str)), "")
        if how == "plausible" and key in PLAUSIBLE:
            value = draw(st.sampled_from(PLAUSIBLE[key]))
            path = next(path[: i + 1] for i in range(len(path) - 1, -1, -1) if path[i] == key)
            how = "replace"
        else:
            value = draw(TOML_VALUES)
        _mutate(document, path, "replace" if how == "plausible" else how, value, draw(NEW_KEYS))
    return document


@pytest.fixture
def empty_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty, migrated database file to copy per example."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Database.open(url).dispose()
    monkeypatch.chdir(tmp_path)
    return url


_examples = count(1)


@settings(FUZZ, max_examples=60)
@given(document=team_documents())
def test_team_files_apply_whole_or_not_at_all(empty_desk: str, document: dict[str, Any]) -> None:
    folder = Path(f"example-{next(_examples)}")
    folder.mkdir()
    url = f"sqlite:///{folder / 'vigil.db'}"
    (folder / "vigil.db").write_bytes(Path(empty_desk.removeprefix("sqlite:///")).read_bytes())
    team = folder / "team.toml"
    team.write_text(toml_document(document), encoding="utf-8")
    code, out, err = _run(url, "cara", "team", "apply", str(team))
    db = Database(make_engine(url))
    try:
        with db.read() as session:
            people = session.exec(select(Responder.handle, Responder.role)).all()
        if code != 0:
            assert code == 2, err
            assert "nothing was applied" in err
            assert all(": " in line for line in err.splitlines()[1:]), err
            assert people == []
            return
        assert people, "an applied team file has people"
        assert_consistent(db)
    finally:
        db.dispose()
    exported = folder / "exported.toml"
    exported.write_text(_run(url, "cara", "team", "export")[1])
    leaders = [handle for handle, role in people if role in ("supervisor", "admin")]
    if leaders:
        code, out, err = _run(url, leaders[0], "team", "apply", str(exported))
        assert (code, out.strip()) == (0, "No changes."), err


@settings(FUZZ, max_examples=25)
@given(raw=st.binary(max_size=300))
def test_any_bytes_as_a_team_file_end_in_a_sentence(empty_desk: str, raw: bytes) -> None:
    Path("raw.toml").write_bytes(raw)
    code, _, err = _run(empty_desk, "cara", "team", "apply", "raw.toml")
    assert code in (0, 2), err


# --- every command's arguments ----------------------------------------------------------

SKIPPED = {
    "console": "opens the full-screen console (tests/console/test_console.py)",
    "demo": "builds a month of desk work, then opens the console",
    "db rotate-key": "replaces the run's one key file, which every desk built before shares "
    "(tests/services/test_sealing.py rotates keys of its own)",
}
WORDS = st.sampled_from(
    [
        "ESC-0001", "esc-3", "ESC-9999", "ESC-", "0", "1", "2", "-1", "99999999999999999999",
        "1.5", "#2", "ana", "ben", "cara", "nobody", "primary", "secondary", "nope",
        "metro-pd", "emergency", "edr", "csea", "sev1", "sev9", "triggered", "resolved",
        "closed", "review", "final", "md", "json", "csv", "2026", "-", "--", "",
        " ", "2026-12-24T20:00:00+11:00", "2026-12-24T20:00:00", "2026-13-45T99:99:00Z",
        "2027-01-31", "5m", "4h", "2d", "-1d", "0s", "100000d", "internal_update",
        "identity", "good_faith", "tipline", "subscriber", "us-emergency", "KEY=VALUE", "=",
        "team.toml", "missing.toml", "\u202e", "x" * 300, "\udcff", "a\udc80b", "\x1b[2J",
    ]
) | st.text(max_size=12)  # fmt: skip


FREE_TEXT = st.text(max_size=30)
LIKELY: dict[str, st.SearchStrategy[str]] = {
    "ref": st.sampled_from([f"ESC-{n:04d}" for n in range(1, 9)] + ["esc-3"]),
    "case": st.sampled_from(["ESC-0001", "ESC-0004"]),
    "id": st.sampled_from(["1", "2", "3"]),
    "number": st.sampled_from(["1", "2"]),
    "to": st.sampled_from(["ana", "ben", "dev", "metro-pd", "2026-12-25T00:00:00Z"]),
    "who": st.sampled_from(["ana", "ben", "dev"]),
    "owner": st.sampled_from(["ana", "ben"]),
    "with_handle": st.sampled_from(["ana", "dev"]),
    "start": st.sampled_from(["2026-12-24T09:00:00Z", "2026-12-01T00:00:00+11:00"]),
    "end": st.sampled_from(["2026-12-24T11:00:00Z", "2026-12-02T00:00:00+11:00"]),
    "at": st.sampled_from(["2026-12-25T01:00:00Z"]),
    "since": st.sampled_from(["2026-11-25T00:00:00Z", "2026-11-26T08:00:00+00:00"]),
    "until": st.sampled_from(["2026-11-26T09:00:00Z"]),
    "filed_at": st.sampled_from(["2026-11-26T08:00:00Z"]),
    "due": st.sampled_from(["2d", "2027-01-31", "2027-01-31T00:00:00Z"]),
    "days": st.sampled_from(["1", "7", "366"]),
    "schedule": st.sampled_from(["primary", "secondary"]),
    "partner": st.sampled_from(["metro-pd"]),
    "name": st.sampled_from(["internal_update", "emergency_ack", "metro-pd", "helpline"]),
    "year": st.sampled_from(["2026"]),
    "clock": st.sampled_from(["tipline", "preservation"]),
    "step": st.sampled_from(["identity", "agency", "partner_notified", "evidence_preserved"]),
    "status": st.sampled_from(["review", "final", "draft", "open", "taken"]),
    "stage": st.sampled_from(["investigating", "closed"]),
    "file": st.sampled_from(["team.toml", "missing.toml", "-"]),
    "notes_file": st.sampled_from(["team.toml", "-"]),
    "summary_file": st.sampled_from(["team.toml"]),
    "out": st.sampled_from(["out.md", ""]),
    "data": st.sampled_from(["subscriber", "subscriber,ip_logs", "nope"]),
    "basis": st.sampled_from(["us-emergency", "us-consent"]),
    "set": st.sampled_from(["agency=Metro", "x", "=y"]),
}
"""Values a person would likely give an argument of that name: most examples then get
past the parser and into the command itself."""


def arguments(parser: argparse.ArgumentParser) -> st.SearchStrategy[list[str]]:
    """Argument lists for one command: mostly well-formed (its positionals, its required
    options and some others, each with a likely value, a choice, or any word at all), so
    the command itself runs; now and then with a stray token for the parser to refuse."""
    positionals: list[st.SearchStrategy[list[str]]] = []
    required: list[st.SearchStrategy[list[str]]] = []
    options: list[st.SearchStrategy[list[str]]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if set(action.option_strings) & {"--db", "--as"}:
            continue  # the test names the database and the person
        values = WORDS | FREE_TEXT
        if action.choices:
            values = st.sampled_from(sorted(action.choices)) | values
        if action.dest in LIKELY:
            values = LIKELY[action.dest] | values
        if not action.option_strings:
            optional = action.nargs in ("?", "*")
            positionals.append(st.lists(values, min_size=0 if optional else 1, max_size=1))
            continue
        flag = st.sampled_from(action.option_strings)
        pair = flag.map(lambda f: [f]) if action.nargs == 0 else st.tuples(flag, values).map(list)
        (required if action.required else options).append(pair)

    def flat(parts: Any) -> list[str]:
        return [word for part in parts for word in part]

    head = st.tuples(*positionals, *required).map(flat)
    tail = st.lists(st.one_of(options), max_size=3).map(flat) if options else st.just([])
    stray = st.sampled_from([0, 0, 0, 1]).flatmap(lambda n: st.lists(WORDS, min_size=n, max_size=n))
    return st.tuples(head, tail, stray).map(lambda p: p[0] + p[1] + p[2])


@pytest.fixture(scope="module")
def desk_template(tmp_path_factory: pytest.TempPathFactory) -> FullDesk:
    folder = tmp_path_factory.mktemp("fuzz-desk")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_parser", functools.cache(cli.build_parser))
        patch.setattr(schema, "head_revision", functools.cache(schema.head_revision))
        return build_full_desk(f"sqlite:///{folder / 'vigil.db'}", FakeClock(T), folder)


COMMANDS = sorted(set(cli_commands()) - set(SKIPPED))


async def _public_address(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_any_arguments_without_a_traceback(
    command: str,
    desk_template: FullDesk,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desk = desk_template.copy(tmp_path / "desk")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    Path("team.toml").write_text(TEAM_FILE.read_text())
    words = command.split()
    if command == "engine":
        words.append("--once")  # the engine without --once runs until stopped
        monkeypatch.setattr(  # receivers that answer 503, at a public address, offline
            engine_module,
            "process_webhook_outbox",
            functools.partial(
                process_webhook_outbox,
                transport=httpx.MockTransport(lambda _: httpx.Response(503)),
                resolve=_public_address,
            ),
        )

    @settings(FUZZ, max_examples=8)
    @given(
        argv=arguments(cli_commands()[command]),
        who=st.sampled_from(["ben", "ben", "cara", "eli", "olga", "nobody"]),
    )
    def run(argv: list[str], who: str) -> None:
        _run(desk.url, who, *words, *argv)

    run()
    db = Database(make_engine(desk.url))
    try:
        assert_consistent(db)
    finally:
        db.dispose()


@settings(FUZZ, max_examples=40)
@given(
    text=st.text(st.characters(codec="utf-8") | st.sampled_from("\x1b\x07\x9b\r\t\n"), max_size=20),
    command=st.sampled_from(
        [
            ["note", "ESC-0001"],
            ["page", "--title", "t", "--category", "edr", "--severity", "2", "--details"],
            ["resolve", "ESC-0002", "--note"],
            ["handover", "submit", "--since", "2026-11-26T00:00:00Z", "--notes"],
        ]
    ),
)
def test_stored_text_never_carries_terminal_control_characters(
    desk_template: FullDesk, tmp_path_factory: pytest.TempPathFactory, text: str, command: list[str]
) -> None:
    """Free text is stored for others to read: a terminal escape in it is refused with the
    field and position named, never kept to be replayed on someone else's screen."""
    desk = desk_template.copy(tmp_path_factory.mktemp("text"))
    code, _, err = _run(desk.url, "cara", *command, text)
    stripped = text.strip()
    if RAW_CONTROL.search(stripped):
        assert code == 2
        assert "control character U+" in err
    else:
        assert code == 0 or "required" in err, err


@settings(FUZZ, max_examples=20)
@given(raw=st.binary(min_size=1, max_size=12).filter(lambda b: not _utf8(b)))
def test_arguments_that_are_not_utf8_are_refused_by_position(intake_desk: str, raw: bytes) -> None:
    """A shell passes bytes; those that are not UTF-8 arrive as lone surrogates."""
    code, _, err = _run(intake_desk, "ana", "note", "ESC-0001", os.fsdecode(raw))
    assert (code, err.splitlines()[0]) == (2, "vigil: argument 7 is not valid UTF-8 text")


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

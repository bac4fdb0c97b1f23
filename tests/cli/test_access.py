"""Access: every action of the desk against every kind of person, from the command line.

The matrix runs each action as a specialist (dev, who owns none of the cases), a supervisor
(cara), an admin (eli), a handle the desk does not know, and a supervisor who has left
(olga, inactive: refusing her proves the active check, not the role check). An action a
person may take succeeds and leaves an audit record; one they may not is refused (exit 1,
a sentence naming the rule) and changes nothing at all: every table is byte-for-byte the
same afterwards. The audit chain itself is checked from the command line: `vigil audit
verify` names an edited, a deleted and a reordered record.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlmodel import col

import app.cli.main as cli
from app.core.clock import FakeClock
from data import schema
from data.db import Database, make_engine
from data.models import AuditRecord
from data.schema import every_table
from tests.consistency import assert_consistent
from tests.factories import FullDesk, build_full_desk, cli_commands

T = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SPECIALIST, SUPERVISOR, ADMIN, UNKNOWN, INACTIVE = "dev", "cara", "eli", "nobody", "olga"
ROLES = (SPECIALIST, SUPERVISOR, ADMIN, UNKNOWN, INACTIVE)
EVERYONE = frozenset({SPECIALIST, SUPERVISOR, ADMIN})
SUPERVISING = frozenset({SUPERVISOR, ADMIN})

Argv = Callable[[FullDesk], list[str]]


@dataclass(frozen=True)
class Action:
    name: str
    argv: Argv
    allowed: frozenset[str]
    audit_action: str
    """What the audit record of a successful run says it was."""


def _ref(key: str) -> Callable[[FullDesk], str]:
    return lambda desk: desk.refs[key]


def _later(days: int) -> str:
    return (T + timedelta(days=days)).isoformat()


ACTIONS = [
    Action(
        "page",
        lambda d: ["page", "--title", "New", "--category", "edr", "--severity", "2"],
        EVERYONE,
        "case.open",
    ),
    Action("ack", lambda d: ["ack", d.refs["ringing"]], EVERYONE, "case.ack"),
    Action("note", lambda d: ["note", d.refs["assigned"], "seen"], EVERYONE, "case.note"),
    Action("escalate", lambda d: ["escalate", d.refs["ringing"]], EVERYONE, "case.escalate"),
    Action(
        "resolve someone else's",
        lambda d: ["resolve", d.refs["assigned"]],
        SUPERVISING,
        "case.resolve",
    ),
    Action(
        "snooze someone else's",
        lambda d: ["snooze", d.refs["assigned"], "--until", "2h", "--reason", "agency replies"],
        SUPERVISING,
        "case.snooze",
    ),
    Action(
        "reopen someone else's",
        lambda d: ["reopen", d.refs["closed"], "--reason", "a second report came in"],
        SUPERVISING,
        "case.reopen",
    ),
    Action(
        "merge someone else's",
        lambda d: ["merge", d.refs["assigned"], "--into", d.refs["ringing"]],
        SUPERVISING,
        "case.merge",
    ),
    Action(
        "reassign someone else's",
        lambda d: ["reassign", d.refs["assigned"], "--to", "ana"],
        SUPERVISING,
        "case.reassign",
    ),
    Action(
        "stage of someone else's",
        lambda d: ["stage", d.refs["assigned"], "investigating"],
        SUPERVISING,
        "case.stage",
    ),
    Action("reveal", lambda d: ["show", d.refs["sensitive"], "--reveal"], EVERYONE, "case.reveal"),
    Action(
        "reveal casework",
        lambda d: ["casework", "show", d.refs["sensitive"], "--reveal"],
        EVERYONE,
        "case.reveal",
    ),
    Action(
        "override",
        lambda d: [
            "override",
            "--schedule",
            "primary",
            "--who",
            "ana",
            "--from",
            _later(40),
            "--to",
            _later(41),
        ],
        SUPERVISING,
        "override.add",
    ),
    Action(
        "override remove",
        lambda d: ["override", "remove", str(d.override_id)],
        SUPERVISING,
        "override.remove",
    ),
    Action("swap approve", lambda d: ["swap", "approve", "1"], SUPERVISING, "swap.approve"),
    Action(
        "swap decline",
        lambda d: ["swap", "decline", "1", "--reason", "no"],
        SUPERVISING,
        "swap.decline",
    ),
    Action(
        "swap cancel someone else's", lambda d: ["swap", "cancel", "2"], SUPERVISING, "swap.cancel"
    ),
    Action("swap take", lambda d: ["swap", "take", "2"], EVERYONE, "swap.take"),
    Action(
        "on-call settings",
        lambda d: ["calendar", "settings", "--swap-approval", "optional"],
        SUPERVISING,
        "settings.change",
    ),
    Action(
        "team apply",
        lambda d: ["team", "apply", str(d.files["team_changed"])],
        SUPERVISING,
        "team.apply",
    ),
    Action(
        "casework apply",
        lambda d: ["casework", "apply", str(d.files["casework"])],
        SUPERVISING,
        "casework.settings",
    ),
    Action(
        "partner add",
        lambda d: ["partner", "add", "helpline", "--kind", "ngo", "--agency", "Helpline"],
        SUPERVISING,
        "partner.add",
    ),
    Action(
        "partner link on someone else's",
        lambda d: ["partner", "link", d.refs["assigned"], "metro-pd"],
        SUPERVISING,
        "partner.link",
    ),
    Action(
        "verify someone else's",
        lambda d: ["verify", d.refs["assigned"], "agency", "--agency", "Metro", "--officer", "L"],
        SUPERVISING,
        "verification.record",
    ),
    Action(
        "contain someone else's",
        lambda d: ["contain", d.refs["assigned"], "partner_notified"],
        SUPERVISING,
        "containment.done",
    ),
    Action(
        "action item on someone else's",
        lambda d: ["action", "add", d.refs["assigned"], "Call back", "--owner", "ana"],
        SUPERVISING,
        "action.add",
    ),
    Action(
        "action item done, not its owner",
        lambda d: ["action", "done", d.refs["assigned"], "1"],
        SUPERVISING,
        "action.done",
    ),
    Action(
        "action item cancel, not its owner",
        lambda d: ["action", "cancel", d.refs["assigned"], "2"],
        SUPERVISING,
        "action.cancel",
    ),
    Action(
        "extend someone else's hold",
        lambda d: ["clock", "extend", d.refs["held"], "--note", "renewed"],
        SUPERVISING,
        "clock.extend",
    ),
    Action(
        "offer someone else's shift",
        lambda d: [
            "swap",
            "request",
            "--schedule",
            "primary",
            "--from",
            d.ben_shift[0],
            "--to",
            d.ben_shift[1],
        ],
        frozenset(),  # only the person on call offers their shift; supervisors override
        "swap.request",
    ),
    Action(
        "disclosure before verification",
        lambda d: [
            "disclosure",
            "request",
            d.refs["assigned"],
            "--data",
            "subscriber",
            "--to",
            "metro-pd",
            "--basis",
            "us-emergency",
            "--override-reason",
            "cannot wait",
        ],
        SUPERVISING,
        "disclosure.request",
    ),
    Action(
        "disclosure approve",
        lambda d: ["disclosure", "approve", d.refs["disclosure"], "1"],
        SUPERVISING,
        "disclosure.approve",
    ),
    Action(
        "disclosure decline",
        lambda d: ["disclosure", "decline", d.refs["disclosure"], "1", "--reason", "no"],
        SUPERVISING,
        "disclosure.decline",
    ),
    Action(
        "clock file on someone else's",
        lambda d: ["clock", "file", d.refs["sensitive"], "--report-id", "CT-1"],
        SUPERVISING,
        "clock.file",
    ),
    Action(
        "clock waive",
        lambda d: ["clock", "waive", d.refs["sensitive"], "--clock", "tipline", "--reason", "r"],
        SUPERVISING,
        "clock.waive",
    ),
    Action(
        "post-mortem open",
        lambda d: ["postmortem", "open", d.refs["closed"]],
        SUPERVISING,
        "postmortem.open",
    ),
    Action(
        "post-mortem edit",
        lambda d: ["postmortem", "edit", d.refs["resolved"], "--root-cause", "x"],
        SUPERVISING,
        "postmortem.edit",
    ),
    Action(
        "post-mortem status",
        lambda d: ["postmortem", "status", d.refs["resolved"], "review"],
        SUPERVISING,
        "postmortem.status",
    ),
    Action(
        "post-mortem action",
        lambda d: [
            "postmortem",
            "action",
            d.refs["resolved"],
            "--title",
            "T",
            "--owner",
            "ana",
            "--due",
            "2027-02-01",
        ],
        SUPERVISING,
        "postmortem.action",
    ),
    Action(
        "post-mortem action done, not its owner",
        lambda d: ["postmortem", "done", d.refs["resolved"], "1"],
        SUPERVISING,
        "postmortem.action_done",
    ),
    Action(
        "handover ack, by the incoming person only",
        lambda d: ["handover", "ack", "1"],
        frozenset({SUPERVISOR}),  # the schedule names cara as ben's incoming person
        "handover.ack",
    ),
    Action(
        "handover submit",
        lambda d: ["handover", "submit", "--notes", "n", "--since", _later(-1)],
        EVERYONE,
        "handover.submit",
    ),
    Action(
        "template logged as a note",
        lambda d: ["template", "fill", "internal_update", d.refs["assigned"], "--log"],
        EVERYONE,
        "case.note",
    ),
]


# --- the desk, once per module; a fresh copy per cell -------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> FullDesk:
    folder = tmp_path_factory.mktemp("desk")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "build_parser", functools.cache(cli.build_parser))
        patch.setattr(schema, "head_revision", functools.cache(schema.head_revision))
        desk = build_full_desk(f"sqlite:///{folder / 'vigil.db'}", FakeClock(T), folder)
    changed = desk.files["team"].read_text().replace('name = "Dev Patel"', 'name = "Dev P."')
    desk.files["team_changed"] = folder / "team-changed.toml"
    desk.files["team_changed"].write_text(changed)
    return desk


@pytest.fixture(autouse=True)
def _parser_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same parser for every command of a test: building it is most of a command's cost."""
    monkeypatch.setattr(cli, "build_parser", functools.cache(cli.build_parser))


@pytest.fixture(autouse=True)
def _known_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """The newest schema revision, read once: alembic reads its scripts on every open."""
    monkeypatch.setattr(schema, "head_revision", functools.cache(schema.head_revision))


@dataclass
class Copy:
    """A copy of the desk for one cell, with a handle on its database for the checks."""

    desk: FullDesk
    db: Database

    @classmethod
    def of(cls, template: FullDesk, folder: Path) -> Copy:
        desk = template.copy(folder)
        return cls(desk, Database(make_engine(desk.url)))

    def digest(self) -> str:
        """Every row of every table, in key order: equal digests mean nothing changed."""
        digest = hashlib.sha256()
        with self.db.read() as session:
            for table in every_table().sorted_tables:
                order = list(table.primary_key.columns) or list(table.columns)
                for row in session.execute(select(table).order_by(*order)):
                    digest.update(repr(tuple(row)).encode())
        return digest.hexdigest()

    def audit_seq(self) -> int:
        with self.db.read() as session:
            return int(session.scalar(select(func.max(AuditRecord.seq))) or 0)

    def audited_since(self, seq: int) -> list[tuple[str, str]]:
        with self.db.read() as session:
            rows = session.execute(
                select(col(AuditRecord.actor), col(AuditRecord.action)).where(
                    col(AuditRecord.seq) > seq
                )
            )
            return [(actor, action) for actor, action in rows]


# --- the matrix -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_action_against_every_role(role: str, template: FullDesk, tmp_path: Path) -> None:
    refused = Copy.of(template, tmp_path / "refused")
    unchanged = refused.digest()
    wrong: list[str] = []
    for number, action in enumerate(ACTIONS):
        if role in action.allowed:
            cell = Copy.of(template, tmp_path / f"ok-{number}")
            before = cell.audit_seq()
            code, _, err = cell.desk.run(role, *action.argv(cell.desk))
            if code != 0:
                wrong.append(f"{action.name}: refused to {role}: {err.strip()}")
            elif (role, action.audit_action) not in cell.audited_since(before):
                wrong.append(f"{action.name}: no {action.audit_action} record")
            else:
                assert_consistent(cell.db)
            cell.db.dispose()
            continue
        code, out, err = refused.desk.run(role, *action.argv(refused.desk))
        if code != 1 or out:
            wrong.append(f"{action.name}: not refused to {role} (exit {code}) {err}")
        elif not any(why in err for why in ("responder of this desk", " only ", "not on call")):
            wrong.append(f"{action.name}: the refusal does not say why: {err.strip()}")
        elif refused.digest() != unchanged:
            wrong.append(f"{action.name}: refused to {role}, yet something changed")
            unchanged = refused.digest()
    refused.db.dispose()
    assert not wrong, "\n".join(wrong)


def test_the_matrix_covers_every_command_that_changes_something(template: FullDesk) -> None:
    """A new command that changes the desk must join the matrix (reads are open to every
    active responder: tests/cli/test_cli.py, `…_no_active_responder_may_not_even_read`)."""
    reads = {
        "cases", "show", "oncall", "calendar export", "calendar gaps", "override list",
        "swap list", "audit verify", "audit log", "audit checkpoint", "handover",
        "handover list", "handover show",
        "postmortem show", "postmortem owed", "template list", "template show", "stats",
        "partner list", "action list", "disclosure pending", "clock due", "casework show",
        "casework settings", "report disclosures", "team export", "changes", "evidence list",
        "tipline review", "tipline show", "tipline status", "agency list",
    }  # fmt: skip
    elsewhere = {
        "console", "demo", "engine", "db upgrade", "db roles", "db rotate-key", "intake",
        "serve", "integration key", "tipline setup", "tipline file", "tipline retry",
        "evidence add", "evidence reveal",
        "agency add-channel", "agency remove-channel", "agency request", "agency call-back",
    }  # fmt: skip
    """The console and the engine (tests/faults/test_faults.py), maintenance commands (the
    database's roles: tests/cli/test_db_access.py; the key's rotation:
    tests/services/test_sealing.py), intake,
    which opens cases as `page` does (tests/faults/test_fuzz.py), the HTTP service
    (tests/serve/), integration keys, supervisors' only (tests/cli/test_cli_serve.py), and
    CyberTipline filing, which needs NCMEC's stand-in (tests/services/test_tipline.py), and
    the agency directory's roles (tests/services/test_agency.py, tests/cli/test_cli_agency.py)."""
    commands = set(cli_commands())
    covered = set()
    for action in ACTIONS:
        words = action.argv(template)
        covered |= {" ".join(words[:n]) for n in (1, 2) if " ".join(words[:n]) in commands}
    missing = sorted(commands - reads - elsewhere - covered)
    assert not missing, f"commands missing from the access matrix: {missing}"


# --- the audit chain from the command line -----------------------------------------------


def _tamper(url: str, *statements: str) -> None:
    db = Database.open(url)
    try:
        with db.write() as session:
            for statement in statements:
                session.execute(text(statement))
    finally:
        db.dispose()


SWAP_5_AND_6 = [
    "UPDATE audit_record SET id = -5 WHERE seq = 5",
    "UPDATE audit_record SET id = 5 WHERE seq = 6",
    "UPDATE audit_record SET id = 6 WHERE seq = 5",
]


@pytest.mark.parametrize(
    ("tampering", "expected"),
    [
        (
            ["UPDATE audit_record SET actor = 'mallory' WHERE seq = 5"],
            "5: record 5 was changed after it was written",
        ),
        (
            ["UPDATE audit_record SET detail = '{{}}' WHERE seq = 7"],
            "7: record 7 was changed after it was written",
        ),
        (
            ["DELETE FROM audit_record WHERE seq = 6"],
            "7: record 7 found where record 6 was expected "
            "(a record was deleted or the order changed)",
        ),
        (
            SWAP_5_AND_6,
            "6: record 6 found where record 5 was expected "
            "(a record was deleted or the order changed)",
        ),
        (
            ["DELETE FROM audit_record WHERE seq = {n}"],
            "{n}: the chain ends at record {m} but {n} were written "
            "(records at the end were deleted)",
        ),
    ],
    ids=["edited-actor", "edited-detail", "deleted", "reordered", "tail-deleted"],
)
def test_audit_verify_names_tampering(
    template: FullDesk, tmp_path: Path, tampering: list[str], expected: str
) -> None:
    cell = Copy.of(template, tmp_path)
    desk, n = cell.desk, cell.audit_seq()
    cell.db.dispose()
    assert desk.run(SUPERVISOR, "audit", "verify") == (
        0,
        f"Audit chain intact: {n} records.\n",
        "",
    )
    _tamper(desk.url, *(statement.format(n=n) for statement in tampering))
    code, out, _ = desk.run(SUPERVISOR, "audit", "verify")
    assert (code, out) == (1, f"Audit chain BROKEN at record {expected.format(n=n, m=n - 1)}\n")


def test_sqlite_has_no_roles_and_a_prefix_is_checked(sqlite_url: str, clock: FakeClock) -> None:
    """On SQLite, one OS account's desk, `--as` names the responder and roles do not exist."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--db", sqlite_url, "db", "roles"], clock=clock, out=out, err=err)
    assert code == 1
    assert "database roles are PostgreSQL's" in err.getvalue()
    err = io.StringIO()
    code = cli.main(["--db", sqlite_url, "db", "roles", "--prefix", "Bad-Name"], out=out, err=err)
    assert code == 2
    assert "--prefix: expected a lowercase letter" in err.getvalue()

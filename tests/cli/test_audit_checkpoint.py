"""Checkpoints witness the audit chain outside the database.

Each attack is what someone with `psql` (or `sqlite3`) and a grudge can do with raw SQL and
the published hashing rule: cut the tail and move the head back, delete a record in the
middle and re-hash everything after it, edit one and re-hash the rest, delete everything.
`vigil audit verify` alone calls each of them intact; against a checkpoint taken before,
each is caught, named, and exits 1.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlmodel import Session, col, select

from app.core.clock import FakeClock
from app.delivery import addresses
from data.audit import GENESIS, record_digest
from data.db import Database
from data.models import AuditRecord
from tests.cli_harness import Run
from tests.factories import WebhookReceiver, add_policy, add_responder, add_webhook
from tests.standard_webhooks import verify

CHECKPOINT = "vigil-checkpoint v1 seq="


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    found: str = request.getfixturevalue(name)
    return found


@pytest.fixture
def run(url: str, clock: FakeClock) -> Run:
    db = Database.open(url)
    try:
        add_responder(db, "ana")
        add_responder(db, "sam", "admin")
        add_policy(db, "emergency", [(300, ["user:ana"])], route=["default"])
    finally:
        db.dispose()
    run = Run(url, clock)
    for number in range(6):
        run.ok("page", "--title", f"Case {number}", "--category", "other", "--severity", "3")
        run.ok("note", f"ESC-{number + 1:04d}", f"note {number}")
    return run


def _raw(url: str, attack: Callable[[Connection], None]) -> None:
    """An attacker's own connection: no Vigil code between them and the tables."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            attack(connection)
    finally:
        engine.dispose()


def _rehash_from(connection: Connection, first: int) -> None:
    """Renumber records from `first` on into a gap-free chain, recompute every hash from the
    stored content (the rule is public), and move the head to the new end. The rows are read
    through the table's model only to parse its types; every write is plain SQL."""
    records = Session(bind=connection).exec(
        select(AuditRecord).where(col(AuditRecord.seq) >= first).order_by(col(AuditRecord.seq))
    )
    rows = [(r.id, r.at, r.actor, r.action, r.case_ref, r.detail) for r in records]
    previous = connection.execute(
        text("SELECT hash FROM audit_record WHERE seq = :seq"), {"seq": first - 1}
    ).scalar_one_or_none()
    previous = previous or GENESIS
    seq = first - 1
    # Out of the way of the unique seq first, then into place.
    connection.execute(text("UPDATE audit_record SET seq = -seq WHERE seq >= :f"), {"f": first})
    for row_id, at, actor, action, case_ref, detail in rows:
        seq += 1
        digest = record_digest(previous, seq, at, actor, action, case_ref, detail)
        connection.execute(
            text("UPDATE audit_record SET seq = :seq, prev_hash = :p, hash = :h WHERE id = :id"),
            {"seq": seq, "p": previous, "h": digest, "id": row_id},
        )
        previous = digest
    connection.execute(
        text("UPDATE audit_head SET seq = :seq, hash = :h"), {"seq": seq, "h": previous}
    )


def _truncate_tail(connection: Connection) -> None:
    end = connection.execute(text("SELECT max(seq) FROM audit_record")).scalar_one()
    connection.execute(text("DELETE FROM audit_record WHERE seq > :keep"), {"keep": end - 4})
    _rehash_from(connection, end - 4)


def _delete_middle(connection: Connection) -> None:
    connection.execute(text("DELETE FROM audit_record WHERE seq = 5"))
    _rehash_from(connection, 5)


def _edit_and_rehash(connection: Connection) -> None:
    connection.execute(text("UPDATE audit_record SET actor = 'sam' WHERE seq = 3"))
    _rehash_from(connection, 1)


def _delete_everything(connection: Connection) -> None:
    connection.execute(text("DELETE FROM audit_record"))
    connection.execute(text("UPDATE audit_head SET seq = 0, hash = :g"), {"g": GENESIS})


def _reorder_and_rehash(connection: Connection) -> None:
    """Records 4 and 5 trade places, in storage order as well as by number."""
    rows = connection.execute(text("SELECT seq, id FROM audit_record WHERE seq IN (4, 5)"))
    ids = {seq: row_id for seq, row_id in rows}
    swap = "UPDATE audit_record SET id = :new, seq = :seq WHERE id = :old"
    connection.execute(text(swap), {"new": -1, "seq": -1, "old": ids[4]})
    connection.execute(text(swap), {"new": ids[4], "seq": 4, "old": ids[5]})
    connection.execute(text(swap), {"new": ids[5], "seq": 5, "old": -1})
    _rehash_from(connection, 1)


ATTACKS = {
    "tail-truncated-head-moved-back": (_truncate_tail, "the chain was cut back"),
    "middle-deleted-rest-rehashed": (_delete_middle, "is not the record the checkpoint"),
    "edited-everything-rehashed": (_edit_and_rehash, "is not the record the checkpoint"),
    "reordered-everything-rehashed": (_reorder_and_rehash, "is not the record the checkpoint"),
    "everything-deleted": (_delete_everything, "it ends at record 0"),
}


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_each_attack_passes_the_plain_check_and_is_caught_by_a_checkpoint(
    run: Run, url: str, tmp_path: Path, attack: str
) -> None:
    tamper, finding = ATTACKS[attack]
    checkpoint = run.ok("audit", "checkpoint").strip()
    assert checkpoint.startswith(CHECKPOINT)
    witnessed = int(checkpoint.split("seq=")[1].split()[0])
    run.ok("ack", "ESC-0001")  # written after the checkpoint
    saved = tmp_path / "checkpoints.txt"
    saved.write_text(f"# kept by the desk lead\n{checkpoint}\n")

    assert "1 record added since" in run.ok("audit", "verify", "--since-checkpoint", str(saved))
    _raw(url, tamper)
    code, out, _ = run("audit", "verify")
    assert code == 0, "the attack should fool the chain alone (else this test proves little)"
    assert out.startswith("Audit chain intact")

    code, out, err = run("audit", "verify", "--since-checkpoint", str(saved))
    assert code == 1, out + err
    assert f"does NOT match the checkpoint at record {witnessed}" in out
    assert finding in out
    code, out, _ = run("audit", "verify", "--since-checkpoint", checkpoint, "--json", who="sam")
    body = json.loads(out)
    assert (code, body["ok"]) == (1, False)
    assert any(finding in problem for problem in body["problems"])


def test_a_checkpoint_pasted_back_reports_what_was_added_and_a_broken_chain_gets_none(
    run: Run, url: str
) -> None:
    first = run.ok("audit", "checkpoint").strip()
    run.ok("ack", "ESC-0002")
    run.ok("resolve", "ESC-0002")
    second = run.json("audit", "checkpoint")
    assert second["seq"] == int(first.split("seq=")[1].split()[0]) + 2
    assert second["line"].startswith(CHECKPOINT)

    # Several checkpoints in one text (a log kept by a cron job): each is held to the chain,
    # and what was added is counted from the latest.
    both = f"{first}\n{second['line']}\n"
    body = run.json("audit", "verify", "--since-checkpoint", both)
    assert (body["ok"], body["checkpoints"], body["added_since"]) == (True, 2, 0)

    # Tampering that the chain alone catches is named too, and no checkpoint is given of it.
    _raw(url, lambda c: c.execute(text("UPDATE audit_record SET actor = 'x' WHERE seq = 2")))
    code, out, _ = run("audit", "verify", "--since-checkpoint", first)
    assert code == 1
    assert "record 2: record 2 was changed after it was written" in out
    code, out, err = run("audit", "checkpoint")
    assert (code, out) == (1, "")
    assert "broken at record 2" in err


def test_a_checkpoint_that_is_not_one_is_refused_naming_the_option(run: Run) -> None:
    code, _, err = run("audit", "verify", "--since-checkpoint", "no/such/file")
    assert code == 2
    assert "--since-checkpoint: expected a file of checkpoints or a checkpoint line" in err
    code, _, err = run("audit", "verify", "--since-checkpoint", "vigil-checkpoint v1 seq=x")
    assert code == 2
    assert "--since-checkpoint: no checkpoint found" in err


def test_a_checkpoint_beyond_the_chain_is_a_cut_back_chain(run: Run) -> None:
    line = run.ok("audit", "checkpoint").strip()
    seq = int(line.split("seq=")[1].split()[0])
    future = line.replace(f"seq={seq} ", f"seq={seq + 10} ")
    code, out, _ = run("audit", "verify", "--since-checkpoint", future)
    assert code == 1
    assert f"it ends at record {seq}, but the checkpoint witnessed {seq + 10} records" in out


def test_every_handover_report_carries_the_head_and_serves_as_a_checkpoint(
    run: Run, url: str, tmp_path: Path
) -> None:
    head = run.json("audit", "checkpoint")
    body = run.json("handover", "--since", "2026-11-26T08:00:00Z")
    assert body["audit_head"] == {"seq": head["seq"], "hash": head["hash"]}
    report = tmp_path / "handover.md"
    report.write_text(run.ok("handover", "--since", "2026-11-26T08:00:00Z"))
    text = report.read_text()
    assert "## Audit chain" in text
    assert f"vigil-checkpoint v1 seq={head['seq']} hash={head['hash']}" in text

    since = "2026-11-26T08:00:00Z"
    submitted = run.json("handover", "submit", "--notes", "quiet night", "--since", since)
    assert submitted["report"]["audit_head"]["seq"] == head["seq"]
    assert "vigil-checkpoint v1" in run.ok("handover", "show", str(submitted["id"]))

    assert run("audit", "verify", "--since-checkpoint", str(report))[0] == 0
    _raw(url, _edit_and_rehash)
    code, out, _ = run("audit", "verify", "--since-checkpoint", str(report))
    assert code == 1
    assert f"record {head['seq']} is not the record the checkpoint witnessed" in out


def test_several_checkpoints_narrow_down_where_the_chain_was_rewritten(run: Run, url: str) -> None:
    first = run.ok("audit", "checkpoint").strip()
    seq = int(first.split("seq=")[1].split()[0])
    run.ok("ack", "ESC-0003")
    run.ok("note", "ESC-0003", "after the first checkpoint")
    second = run.ok("audit", "checkpoint").strip()
    _raw(url, lambda c: _rehash_after_editing(c, seq + 1))
    code, out, _ = run("audit", "verify", "--since-checkpoint", f"{first}\n{second}")
    assert code == 1
    assert f"records {seq + 1} to {seq + 2} were changed" in out


def _rehash_after_editing(connection: Connection, target: int) -> None:
    connection.execute(text("UPDATE audit_record SET actor = 'sam' WHERE seq = :s"), {"s": target})
    _rehash_from(connection, target)


# --- sent out of the database -----------------------------------------------------------

SECRET = "whsec_" + base64.b64encode(b"a checkpoint witness's own key!!").decode()


def _witness(
    url: str,
    receiver: WebhookReceiver,
    handle: str = "sam",
    *,
    address: str | None = None,
    allow_private: bool = True,
) -> None:
    db = Database.open(url)
    try:
        add_webhook(
            db,
            handle,
            address or receiver.url("witness"),
            SECRET,
            allow_insecure=True,
            allow_private=allow_private,
        )
    finally:
        db.dispose()


class _Resolver:
    """Answers 127.0.0.1 for `witness.test` (any other name as the system does), and
    counts the lookups of it."""

    def __init__(self) -> None:
        self.lookups = 0
        self._system = addresses._system_getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "witness.test":
            self.lookups += 1
            return self._system("127.0.0.1", port, *args, **kwargs)
        return self._system(host, port, *args, **kwargs)


@pytest.mark.parametrize("allowed", [False, True], ids=["refused", "allowed"])
def test_send_checks_the_address_on_the_lookup_its_connection_makes(
    url: str, run: Run, monkeypatch: pytest.MonkeyPatch, allowed: bool
) -> None:
    """A name that resolves to a private address is refused unless the contact allows it,
    and the check is on the very lookup the connection makes: one lookup, so a name cannot
    answer a public address to a check and a private one to the connection."""
    resolver = _Resolver()
    monkeypatch.setattr(addresses, "_system_getaddrinfo", resolver)
    receiver = WebhookReceiver()
    receiver.up()
    try:
        address = f"http://witness.test:{receiver.port}/witness"
        _witness(url, receiver, address=address, allow_private=allowed)
        code, out, err = run("audit", "checkpoint", "--send")
    finally:
        receiver.down()
    assert out.startswith(CHECKPOINT)
    assert resolver.lookups == 1
    if allowed:
        assert code == 0, err
        assert len(receiver.received) == 1
    else:
        assert code == 1
        assert receiver.received == []
        assert "resolves to a loopback address (127.0.0.1); allow_private = true" in err


def test_send_posts_the_checkpoint_signed_to_the_supervisors_webhooks(url: str, run: Run) -> None:
    receiver = WebhookReceiver()
    receiver.up()
    try:
        _witness(url, receiver)
        code, out, err = run("audit", "checkpoint", "--send")
    finally:
        receiver.down()
    assert code == 0, err
    line = out.strip()
    assert line.startswith(CHECKPOINT)
    [came] = receiver.received
    assert verify(SECRET, came.headers, came.body, datetime.now(UTC))
    body = json.loads(came.body)
    assert body["type"] == "vigil.audit.checkpoint"
    assert body["checkpoint"] == line
    assert "sam's webhook http://127.0.0.1" in err
    assert "#kept:" in err  # the URL as shown, never its path
    assert "/witness" not in err
    # What was sent proves the chain as a pasted checkpoint does.
    code, out, err = run("audit", "verify", "--since-checkpoint", body["checkpoint"])
    assert code == 0, err


def test_send_to_a_receiver_that_refuses_says_so_and_exits_1(url: str, run: Run) -> None:
    receiver = WebhookReceiver(status=500)
    receiver.up()
    try:
        _witness(url, receiver)
        code, out, err = run("audit", "checkpoint", "--send")
    finally:
        receiver.down()
    assert code == 1
    assert out.startswith(CHECKPOINT)  # printed all the same: keep it
    assert "NOT sent: the receiver answered HTTP 500" in err


def test_send_with_nobody_to_send_to_exits_1(run: Run) -> None:
    code, out, err = run("audit", "checkpoint", "--send")
    assert code == 1
    assert out.startswith(CHECKPOINT)
    assert "sent nowhere" in err


def test_send_goes_only_to_supervisors_and_admins(url: str, run: Run) -> None:
    receiver = WebhookReceiver()
    receiver.up()
    try:
        _witness(url, receiver, handle="ana")  # a specialist's webhook is not a witness
        code, _out, err = run("audit", "checkpoint", "--send")
    finally:
        receiver.down()
    assert code == 1
    assert receiver.received == []
    assert "sent nowhere" in err

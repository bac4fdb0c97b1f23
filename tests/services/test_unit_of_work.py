"""The unit of work's actors: a responder, a part of Vigil, and the founder of a desk."""

from __future__ import annotations

import pytest
from sqlmodel import select

from app.core.clock import FakeClock
from app.core.errors import NotAllowed
from app.services.unit_of_work import Founder, UnitOfWork
from data import audit
from data.db import Database
from data.models import AuditRecord, Responder
from tests.factories import add_responder


@pytest.fixture
def db(any_db: Database) -> Database:
    """On SQLite and (with VIGIL_TEST_PG) on PostgreSQL."""
    return any_db


class Admission:
    """A founder's `admit` that notes each row it was shown and refuses specialists."""

    def __init__(self) -> None:
        self.shown: list[str | None] = []

    def __call__(self, me: Responder | None) -> None:
        self.shown.append(None if me is None else me.handle)
        if me is not None and me.role == "specialist":
            raise NotAllowed("no specialists here")


def test_a_founder_acts_as_a_stand_in_on_a_desk_with_no_active_responder(
    db: Database, clock: FakeClock
) -> None:
    add_responder(db, "gone", "admin", active=False)
    admit = Admission()
    with UnitOfWork(db, clock)(Founder("root", admit)) as tx:
        assert (tx.actor.handle, tx.actor.id, tx.supervising) == ("root", None, True)
        audit.append(tx.session, at=tx.now, actor=tx.actor.handle, action="team.apply")
    assert admit.shown == []  # nobody to rule on: the desk is being founded
    with db.read() as session:
        handles = [r.handle for r in session.exec(select(Responder))]
        [record] = session.exec(select(AuditRecord)).all()
    assert handles == ["gone"]  # the stand-in is never stored
    assert record.actor == "root"


def test_a_founder_on_a_desk_with_a_team_acts_as_their_responder_once_admitted(
    db: Database, clock: FakeClock
) -> None:
    add_responder(db, "ana")
    sue = add_responder(db, "sue", "supervisor")
    admit = Admission()
    with UnitOfWork(db, clock)(Founder("sue", admit)) as tx:
        assert (tx.actor.handle, tx.actor.id) == ("sue", sue)
    assert admit.shown == ["sue"]


def test_a_founder_on_a_desk_with_a_team_is_refused_in_the_words_of_admit(
    db: Database, clock: FakeClock
) -> None:
    add_responder(db, "ana")
    admit = Admission()
    with (
        pytest.raises(NotAllowed, match="no specialists here"),
        UnitOfWork(db, clock)(Founder("ana", admit)),
    ):
        pass
    assert admit.shown == ["ana"]


@pytest.mark.parametrize("inactive", [False, True])
def test_a_founder_admit_lets_through_is_still_refused_unless_active(
    db: Database, clock: FakeClock, inactive: bool
) -> None:
    add_responder(db, "sue", "supervisor")
    if inactive:
        add_responder(db, "old", "supervisor", active=False)
    admit = Admission()
    with (
        pytest.raises(NotAllowed, match="'old' is not an active responder of this desk"),
        UnitOfWork(db, clock)(Founder("old", admit)),
    ):
        pass
    assert admit.shown == ["old" if inactive else None]

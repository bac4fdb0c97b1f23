"""Emergency-request fraud defence, on SQLite and PostgreSQL: the agency directory kept by
supervisors, request origins flagged when they do not match it or cite the wrong law, the
call-back that records its directory entry, and sev1 emergency disclosures made by two
people, never one login twice; every step in the audit chain."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import col, select

from app.core.clock import FakeClock
from app.core.errors import BadInput, NotAllowed
from app.rules.fraud import cited_sections, law_flag
from app.services.casework.agency import AgencyService
from data import audit
from data.casework import VerificationRecord
from data.db import Database
from data.models import AuditRecord
from tests.factories import CaseworkDesk, add_policy, add_responder


class Desk(CaseworkDesk, AgencyService):
    """Casework, case actions and the agency directory on one object."""


@pytest.fixture
def desk(any_db: Database, clock: FakeClock) -> Desk:
    add_responder(any_db, "ana")
    add_responder(any_db, "sam", "supervisor")
    add_responder(any_db, "max", "supervisor")
    add_policy(any_db, "standard", [(1800, ["user:ana"])], route=["default"])
    desk = Desk(any_db, clock)
    desk.add_partner(
        "sam",
        name="metro-pd",
        kind="law_enforcement",
        agency="Metro Police Department",
        verified_channel="dispatch +1 555 0100 from the state police directory",
    )
    desk.add_channel(
        "sam", "metro-pd", domain="metro-pd.example.gov", source="the state's agency list"
    )
    desk.add_channel(
        "sam", "metro-pd", phone="+1 555 0100", source="the state police's public directory"
    )
    return desk


def _edr(desk: Desk, severity: int = 1) -> str:
    return desk.open_case("ana", title="EDR", category="edr", severity=severity).ref


def _audit(db: Database, action: str) -> list[dict[str, Any]]:
    with db.read() as session:
        return [
            r.detail
            for r in session.exec(
                select(AuditRecord)
                .where(AuditRecord.action == action)
                .order_by(col(AuditRecord.seq))
            )
        ]


def _flags(desk: Desk, ref: str) -> tuple[str, ...]:
    return desk.casework("ana", ref).request_flags


def test_a_request_from_an_unlisted_domain_is_flagged(desk: Desk) -> None:
    ref = _edr(desk)
    view = desk.record_origin(
        "ana",
        ref,
        sender_email="sgt.lee@metro-pd-example.com",  # a look-alike of the listed domain
        cited_law="18 U.S.C. 2702(b)(8)",
    )
    assert [f.split(":")[0] for f in view.flags] == ["unlisted_domain"]
    assert "metro-pd-example.com" in _flags(desk, ref)[0]
    assert _audit(desk.db, "request.origin")[-1]["flags"] == ["unlisted_domain"]
    with desk.db.read() as session:
        assert audit.verify(session).ok


def test_a_request_that_matches_the_directory_raises_no_flag(desk: Desk) -> None:
    ref = _edr(desk)
    view = desk.record_origin(
        "ana",
        ref,
        sender_email="Sgt.Lee@METRO-PD.example.gov",
        sender_phone="+1 (555) 0100",
        cited_law="18 USC § 2702 (c)(4)",
    )
    assert view.flags == ()
    assert _flags(desk, ref) == ()


def test_an_unlisted_number_and_the_wrong_law_are_flagged(desk: Desk) -> None:
    ref = _edr(desk)
    view = desk.record_origin("ana", ref, sender_phone="+1 555 0199", cited_law="18 U.S.C. 2703(f)")
    assert [f.split(":")[0] for f in view.flags] == ["unlisted_phone", "law_mismatch"]
    preservation = desk.open_case("ana", title="Hold", category="preservation", severity=3).ref
    assert (
        desk.record_origin(
            "ana", preservation, sender_email="x@metro-pd.example.gov", cited_law="2703(f)"
        ).flags
        == ()
    )
    nothing = desk.record_origin("ana", _edr(desk), sender_email="x@metro-pd.example.gov")
    assert [f.split(":")[0] for f in nothing.flags] == ["no_law"]


def test_law_rules_read_citations_as_people_write_them() -> None:
    assert cited_sections("18 U.S.C. §§ 2702(b)(8) and 2702 (c) (4)") == [
        "2702(b)(8)",
        "2702(c)(4)",
    ]
    assert law_flag("edr", "2702(b)(8)") is None
    assert law_flag("le_request", "18 U.S.C. 2703(d) order") is None
    flag = law_flag("le_request", "2702(b)(8)")
    assert flag is not None
    assert flag.code == "law_mismatch"


def test_only_supervisors_keep_the_directory_and_its_changes_are_audited(desk: Desk) -> None:
    with pytest.raises(NotAllowed, match="supervisor"):
        desk.add_channel("ana", "metro-pd", domain="evil.example.com", source="the request")
    with pytest.raises(BadInput) as caught:
        desk.add_channel("sam", "metro-pd", phone="555 0100", source="x")
    assert caught.value.field == "phone"
    assert [d["value"] for d in _audit(desk.db, "agency.channel.add")] == [
        "metro-pd.example.gov",
        "+15550100",
    ]
    desk.remove_channel("sam", domain="metro-pd.example.gov")
    ref = _edr(desk)
    flags = desk.record_origin(
        "ana", ref, sender_email="a@metro-pd.example.gov", cited_law="2702(b)(8)"
    ).flags
    assert [f.split(":")[0] for f in flags] == ["unlisted_domain"]
    assert _audit(desk.db, "agency.channel.remove")[0]["value"] == "metro-pd.example.gov"


def test_the_call_back_records_its_directory_entry(desk: Desk) -> None:
    ref = _edr(desk)
    [entry] = [c for c in desk.channels() if c.kind == "phone"]
    view = desk.call_back("ana", ref, number="+1-555-0100", contacted="Metro PD dispatch")
    identity = next(s for s in view.steps if s.step == "identity")
    assert identity.done
    facts = dict(identity.facts)
    assert facts["via"] == "+15550100"
    assert f"agency directory entry {entry.id}: metro-pd" in facts["directory"]
    with desk.db.read() as session:
        record = session.exec(select(VerificationRecord)).one()
    assert record.facts["directory"] == facts["directory"]
    assert _audit(desk.db, "verification.record")[-1]["directory_entry"] == entry.id


def test_a_call_back_on_the_requests_own_number_is_refused(desk: Desk) -> None:
    ref = _edr(desk)
    desk.record_origin("ana", ref, sender_phone="+1 555 0199", cited_law="2702(b)(8)")
    with pytest.raises(NotAllowed, match="not a number of the agency directory"):
        desk.call_back("ana", ref, number="+1 555 0199", contacted="the requester")
    identity = {"contacted": "the requester", "via": "+1 555 0199", "directory": "the e-mail"}
    with pytest.raises(NotAllowed, match="the number the request came from"):
        desk.record_verification("ana", ref, "identity", identity)


def test_the_same_login_cannot_approve_its_own_sev1_disclosure(desk: Desk) -> None:
    ref = _edr(desk)
    desk.call_back("ana", ref, number="+1 555 0100", contacted="Metro PD dispatch")
    desk.record_verification("ana", ref, "agency", {"agency": "Metro PD", "officer": "Sgt. Lee"})
    desk.record_verification(
        "ana", ref, "emergency", {"danger": "death", "statement": "Threat tonight"}
    )
    desk.record_verification("ana", ref, "good_faith", {"determination": "Callback matched"})
    request = {"data": "subscriber", "to": "metro-pd", "basis": "us-emergency"}

    made_by_supervisor = desk.request_disclosure("sam", ref, **request)
    assert made_by_supervisor.status == "requested"  # a supervisor alone is one person
    with pytest.raises(NotAllowed, match="same login cannot approve its own"):
        desk.approve_disclosure("sam", ref, 1)
    assert desk.approve_disclosure("max", ref, 1).status == "disclosed"

    desk.request_disclosure("ana", ref, **request)  # the specialist and a supervisor
    assert desk.approve_disclosure("sam", ref, 2).decided_by == "sam"
    approvals = _audit(desk.db, "disclosure.approve")
    assert [a["number"] for a in approvals] == [1, 2]

    calmer = _edr(desk, severity=2)  # below sev1 a supervisor's request is made at once
    assert (
        desk.request_disclosure("sam", calmer, **request, override_reason="dispatch down").status
        == "disclosed"
    )

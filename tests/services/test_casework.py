"""Casework: the legal clocks (pure), the settings parser, and the service's rules for
verification, disclosure, clocks, containment, partners and action items, on SQLite and
PostgreSQL, with every decision in the audit chain."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from app.cli.render import disclosure_report_markdown
from app.core.clock import FakeClock
from app.core.errors import BadInput, NotAllowed, NotFound, NothingToDo
from app.rules.casework import (
    DEFAULT_CONFIG,
    CaseworkConfigError,
    ClockFacts,
    effective_config,
    legal_clocks,
    merged_settings,
    most_urgent,
    parse_casework_config,
    parse_clock_config,
)
from app.services.casework.report import (
    DisclosureReport,
    disclosure_report,
    report_csv,
)
from app.services.casework.service import CaseworkService, ClockView
from app.services.casework.settings import settings_toml
from app.services.casework.views import (
    CaseworkFlags,
    casework_view,
    clocks_needing_attention,
    disclosures_awaiting_approval,
    overdue_summary,
)
from data import audit
from data.casework import Disclosure
from data.db import Database
from data.models import AuditRecord, Case
from tests.factories import CaseworkDesk, add_policy, add_responder

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _clock(clocks: list[ClockView], name: str) -> ClockView:
    return next(c for c in clocks if c.name == name)


# --- legal clocks: pure -----------------------------------------------------


def test_tipline_deadline_goes_ok_warn_breached() -> None:
    facts = ClockFacts("csea", T0)
    at = {
        h: _clock(legal_clocks(facts, DEFAULT_CONFIG, T0 + timedelta(hours=h)), "tipline")
        for h in (1, 20, 24)
    }
    assert at[1].due_at == T0 + timedelta(hours=24)
    assert at[1].reminder_at == T0 + timedelta(hours=20)
    assert [at[h].state for h in (1, 20, 24)] == ["ok", "warn", "breached"]


def test_filing_the_tipline_report_starts_the_one_year_hold() -> None:
    filed = T0 + timedelta(hours=3)
    facts = ClockFacts("csea", T0, filed={"tipline": (filed, "CT-1234")})
    before = legal_clocks(ClockFacts("csea", T0), DEFAULT_CONFIG, T0)
    assert _clock(before, "preserve_reported").state == "pending"
    assert _clock(before, "preserve_reported").due_at is None

    clocks = legal_clocks(facts, DEFAULT_CONFIG, filed)
    tipline, hold = _clock(clocks, "tipline"), _clock(clocks, "preserve_reported")
    assert (tipline.state, tipline.outcome, tipline.reference) == ("done", "filed", "CT-1234")
    assert hold.started_at == filed
    assert hold.due_at == datetime(2027, 3, 2, 12, 0, tzinfo=UTC)  # one calendar year
    assert hold.reminder_at == hold.due_at - timedelta(days=30)
    assert hold.state == "ok"
    assert (
        _clock(legal_clocks(facts, DEFAULT_CONFIG, hold.reminder_at), "preserve_reported").state
        == "warn"
    )
    ended = _clock(legal_clocks(facts, DEFAULT_CONFIG, hold.due_at), "preserve_reported")
    assert (ended.state, ended.outcome, ended.done_at) == ("done", "expired", hold.due_at)


def test_a_report_filed_after_the_deadline_is_marked_late() -> None:
    facts = ClockFacts("csea", T0, filed={"tipline": (T0 + timedelta(hours=30), "CT-9")})
    tipline = _clock(legal_clocks(facts, DEFAULT_CONFIG, T0 + timedelta(days=2)), "tipline")
    assert (tipline.state, tipline.outcome) == ("done", "filed late")


def test_one_year_from_29_february_ends_on_1_march() -> None:
    leap = datetime(2028, 2, 29, 10, 0, tzinfo=UTC)
    facts = ClockFacts("csea", leap, filed={"tipline": (leap, "CT-1")})
    hold = _clock(legal_clocks(facts, DEFAULT_CONFIG, leap), "preserve_reported")
    assert hold.due_at == datetime(2029, 3, 1, 10, 0, tzinfo=UTC)


def test_preservation_runs_90_days_and_extends_once_by_90() -> None:
    plain = _clock(legal_clocks(ClockFacts("preservation", T0), DEFAULT_CONFIG, T0), "preservation")
    assert plain.due_at == T0 + timedelta(days=90)
    assert plain.reminder_at == T0 + timedelta(days=76)
    assert (plain.extensions, plain.extensions_left) == (0, 1)
    assert (
        _clock(
            legal_clocks(ClockFacts("preservation", T0), DEFAULT_CONFIG, T0 + timedelta(days=80)),
            "preservation",
        ).state
        == "warn"
    )

    extended = ClockFacts("preservation", T0, extensions={"preservation": 1})
    clock = _clock(legal_clocks(extended, DEFAULT_CONFIG, T0 + timedelta(days=80)), "preservation")
    assert clock.due_at == T0 + timedelta(days=180)
    assert clock.reminder_at == T0 + timedelta(days=166)
    assert (clock.state, clock.extensions, clock.extensions_left) == ("ok", 1, 0)
    # More extension facts than the law allows never stretch the hold further.
    too_many = ClockFacts("preservation", T0, extensions={"preservation": 3})
    assert _clock(legal_clocks(too_many, DEFAULT_CONFIG, T0), "preservation").due_at == clock.due_at
    expired = _clock(
        legal_clocks(extended, DEFAULT_CONFIG, T0 + timedelta(days=180)), "preservation"
    )
    assert (expired.state, expired.outcome) == ("done", "expired")


def test_waived_clocks_are_done() -> None:
    waived = ClockFacts("csea", T0, waived={"tipline": T0 + timedelta(hours=1)})
    tipline = _clock(legal_clocks(waived, DEFAULT_CONFIG, T0 + timedelta(days=3)), "tipline")
    assert (tipline.state, tipline.outcome) == ("done", "waived")
    released = ClockFacts("preservation", T0, waived={"preservation": T0 + timedelta(days=5)})
    hold = _clock(legal_clocks(released, DEFAULT_CONFIG, T0 + timedelta(days=6)), "preservation")
    assert (hold.state, hold.outcome) == ("done", "released")


def test_categories_without_clocks_have_none() -> None:
    assert legal_clocks(ClockFacts("doxxing", T0), DEFAULT_CONFIG, T0) == []


EU_DESK = """
[clocks.threat_to_life.authority_notice]
kind = "deadline"
label = "Notify the authorities (DSA Article 18)"
due = "1h"
remind = "15m"

[clocks.csea]

[disclosure_basis.eu-vital-interests]
label = "GDPR Art. 6(1)(d): vital interests"
emergency = true

[containment]
csea = ["content_removed", { name = "hash_shared", label = "Hash shared", needs_reference = true }]
"""


def test_a_desk_in_another_jurisdiction_sets_its_own_clocks() -> None:
    config = effective_config(tomllib.loads(EU_DESK))
    notice = legal_clocks(ClockFacts("threat_to_life", T0), config, T0 + timedelta(minutes=50))
    assert [(c.name, c.state, c.due_at) for c in notice] == [
        ("authority_notice", "warn", T0 + timedelta(hours=1))
    ]
    assert legal_clocks(ClockFacts("csea", T0), config, T0) == []  # named empty: none
    assert [c.name for c in legal_clocks(ClockFacts("preservation", T0), config, T0)] == [
        "preservation"  # not named: the built-in clock stays
    ]
    assert config.bases["eu-vital-interests"].emergency is True
    assert "us-emergency" in config.bases
    assert [s.name for s in config.containment_for("csea")] == ["content_removed", "hash_shared"]
    assert [s.name for s in config.containment_for("doxxing")] == [
        s.name for s in DEFAULT_CONFIG.containment_for("doxxing")
    ]


def test_most_urgent_prefers_breached_then_warning_then_soonest() -> None:
    def view(name: str, state: str, hours: int) -> ClockView:
        return ClockView(name, name, "deadline", state, T0 + timedelta(hours=hours), None, T0)

    clocks = [
        view("a", "ok", 1),
        view("b", "warn", 5),
        view("c", "breached", 9),
        view("d", "done", 0),
    ]
    assert most_urgent(clocks) == clocks[2]
    assert most_urgent(clocks[:2]) == clocks[1]
    assert most_urgent([view("x", "ok", 3), view("y", "ok", 2)]) == view("y", "ok", 2)
    assert most_urgent([clocks[3]]) is None


# --- settings parser --------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "path", "message"),
    [
        (
            '[clocks.csea.tipline]\nkind = "deadline"\ndue = "soon"',
            "clocks.csea.tipline.due",
            "duration",
        ),
        (
            '[clocks.cssea.tipline]\nkind = "deadline"\ndue = "1h"',
            "clocks.cssea",
            "did you mean 'csea'",
        ),
        (
            '[clocks.csea.tipline]\nkind = "alarm"\ndue = "1h"',
            "clocks.csea.tipline.kind",
            "deadline or hold",
        ),
        ('[clocks.csea.tipline]\ndue = "1h"', "clocks.csea.tipline.kind", "missing"),
        (
            '[clocks.csea.hold]\nkind = "hold"\ndue = "1y"\nstarts = "filed:nope"',
            "clocks.csea.hold.starts",
            "deadline clock",
        ),
        (
            '[clocks.csea.tipline]\nkind = "deadline"\ndue = "1h"\nremind = "2h"',
            "clocks.csea.tipline.remind",
            "less than due",
        ),
        (
            '[clocks.csea.tipline]\nkind = "deadline"\ndue = "1h"\nextension = "1h"',
            "clocks.csea.tipline.extension",
            "only a hold",
        ),
        (
            '[clocks.preservation.p]\nkind = "hold"\ndue = "90d"\nmax_extensions = 2',
            "clocks.preservation.p.max_extensions",
            "extension",
        ),
        (
            '[clocks.preservation.p]\nkind = "hold"\ndue = "90d"\nextension = "90d"\n'
            "max_extensions = 0",
            "clocks.preservation.p.max_extensions",
            "1 to 10",
        ),
        (
            '[clocks.csea.tipline]\nkind = "deadline"\ndue = "1h"\ncolour = "red"',
            "clocks.csea.tipline.colour",
            "unknown key",
        ),
        ('[clocks.csea.Tip]\nkind = "deadline"\ndue = "1h"', "clocks.csea.Tip", "lowercase"),
        (
            '[disclosure_basis.x]\nlabel = "X"\nemergency = "yes"',
            "disclosure_basis.x.emergency",
            "true or false",
        ),
        ("[disclosure_basis.x]\nemergency = true", "disclosure_basis.x.label", "missing"),
        ("[containment]\ncsea = [5]", "containment.csea[0]", "step name"),
        ('[containment]\ncsea = ["a", "a"]', "containment.csea[1]", "twice"),
        ('[containment]\ncsea = "content_removed"', "containment.csea", "array"),
    ],
)
def test_bad_settings_name_the_key_path(toml: str, path: str, message: str) -> None:
    with pytest.raises(CaseworkConfigError) as caught:
        parse_casework_config(tomllib.loads(toml))
    problems = [(p.path, p.message) for p in caught.value.problems]
    assert any(p == path and message in m for p, m in problems), problems
    assert caught.value.field == problems[0][0]


def test_every_problem_is_reported_at_once() -> None:
    table = {"csea": {"a": {"kind": "deadline", "due": "x"}, "b": {"kind": "hold"}}}
    with pytest.raises(CaseworkConfigError) as caught:
        parse_clock_config(table)
    assert [p.path for p in caught.value.problems] == ["clocks.csea.a.due", "clocks.csea.b.due"]
    assert str(caught.value).splitlines()[0].startswith("clocks.csea.a.due:")


def test_settings_export_reads_back_the_same() -> None:
    merged = merged_settings(tomllib.loads(EU_DESK))
    text = settings_toml(merged)
    assert tomllib.loads(text) == merged
    assert effective_config(tomllib.loads(text)) == effective_config(merged)


# --- the service ------------------------------------------------------------


@pytest.fixture
def desk(any_db: Database, clock: FakeClock) -> CaseworkDesk:
    clock.set(T0)
    add_responder(any_db, "ana")
    add_responder(any_db, "ben")
    add_responder(any_db, "sam", "supervisor")
    add_policy(any_db, "standard", [(1800, ["user:ana"])], route=["default"])
    service = CaseworkDesk(any_db, clock)
    service.add_partner(
        "sam",
        name="metro-pd",
        kind="law_enforcement",
        agency="Metro Police Department",
        contact="Sgt. Lee",
        verified_channel="dispatch +1 555 0100 from the state police directory",
    )
    service.add_partner(
        "sam",
        name="state-police",
        kind="law_enforcement",
        agency="State Police",
        verified_channel="duty desk +1 555 0199 from the agency website",
    )
    service.add_partner("sam", name="product-safety", kind="product", agency="Product Safety")
    return service


def _open(desk: CaseworkService, category: str, severity: int = 1, **kwargs: Any) -> str:
    return desk.open_case(
        "ana", title=f"{category} case", category=category, severity=severity, **kwargs
    ).ref


IDENTITY = {
    "contacted": "Metro PD dispatch, Sgt. Lee",
    "via": "+1 555 0100",
    "directory": "state directory",
}
AGENCY = {"agency": "Metro Police Department", "officer": "Sgt. Lee", "badge": "4471"}
EMERGENCY = {"danger": "death", "statement": "Caller threatens to kill a named person tonight"}
GOOD_FAITH = {"determination": "Independent callback matched; threat is specific and imminent"}


def _verify_all(desk: CaseworkService, ref: str, who: str = "ana") -> None:
    desk.record_verification(who, ref, "identity", IDENTITY)
    desk.record_verification(who, ref, "agency", AGENCY)
    desk.record_verification(who, ref, "emergency", EMERGENCY)
    desk.record_verification(who, ref, "good_faith", GOOD_FAITH)


def _actions(db: Database) -> list[str]:
    with db.read() as session:
        return [r.action for r in session.exec(select(AuditRecord).order_by(col(AuditRecord.seq)))]


def _chain_ok(db: Database) -> bool:
    with db.read() as session:
        return audit.verify(session).ok


def overdue_summary_for(desk: CaseworkService, ids: list[int]) -> dict[int, CaseworkFlags]:
    with desk.db.read() as session:
        cases = session.exec(select(Case).where(col(Case.id).in_(ids))).all()
        return overdue_summary(session, cases, desk.clock.now())


def disclosure_report_for(desk: CaseworkService, year: int) -> DisclosureReport:
    with desk.db.read() as session:
        return disclosure_report(session, year)


def test_verification_checklist_is_recorded_step_by_step(desk: CaseworkService) -> None:
    ref = _open(desk, "edr")
    with pytest.raises(NotAllowed, match="record identity, agency, emergency first"):
        desk.record_verification("ana", ref, "good_faith", GOOD_FAITH)
    view = desk.record_verification("ana", ref, "identity", IDENTITY)
    assert (view.required, view.complete) == (True, False)
    assert view.missing == ("agency", "emergency", "good_faith")
    identity = view.steps[0]
    assert identity.done
    assert identity.recorded_by == "ana"
    assert dict(identity.facts)["caller"] == "ana"  # who called: the recorder by default
    desk.record_verification("ana", ref, "agency", AGENCY)
    desk.record_verification("ana", ref, "emergency", EMERGENCY)
    view = desk.record_verification("ana", ref, "good_faith", GOOD_FAITH)
    assert view.complete
    assert view.missing == ()
    corrected = desk.record_verification("ben", ref, "agency", {**AGENCY, "officer": "Det. Kim"})
    assert dict(corrected.steps[1].facts)["officer"] == "Det. Kim"
    assert corrected.steps[1].recorded_by == "ben"
    with desk.db.read() as session:
        records = session.exec(
            select(AuditRecord).where(AuditRecord.action == "verification.record")
        ).all()
    assert [(r.detail["step"], r.detail["replaced"]) for r in records] == [
        ("identity", False),
        ("agency", False),
        ("emergency", False),
        ("good_faith", False),
        ("agency", True),
    ]
    assert all(r.detail["facts"].startswith("sha256:") for r in records)
    assert "Sgt. Lee" not in str([r.detail for r in records])
    assert _chain_ok(desk.db)


@pytest.mark.parametrize(
    ("step", "facts", "field"),
    [
        ("identity", {"contacted": "PD", "via": "+1 555"}, "directory"),
        ("identity", {**IDENTITY, "officer": "Lee"}, "officer"),
        ("agency", {"agency": "Metro PD", "officer": "  "}, "officer"),
        ("emergency", {"danger": "bruises", "statement": "x"}, "danger"),
        ("vibes", {}, "step"),
    ],
)
def test_verification_bad_input_names_the_field(
    desk: CaseworkService, step: str, facts: dict[str, str], field: str
) -> None:
    ref = _open(desk, "edr")
    with pytest.raises(BadInput) as caught:
        desk.record_verification("ana", ref, step, facts)
    assert caught.value.field == field


def test_disclosure_waits_for_verification_unless_a_supervisor_says_why(
    desk: CaseworkService,
) -> None:
    ref = _open(desk, "edr", severity=2)
    desk.record_verification("ana", ref, "identity", IDENTITY)
    request: dict[str, Any] = {
        "data": "subscriber,ip_logs",
        "to": "metro-pd",
        "basis": "us-emergency",
    }
    with pytest.raises(NotAllowed, match="missing agency, emergency, good_faith"):
        desk.request_disclosure("ana", ref, **request)
    with pytest.raises(NotAllowed, match="only a supervisor"):
        desk.request_disclosure("ana", ref, **request, override_reason="in a hurry")
    with pytest.raises(BadInput) as caught:
        desk.request_disclosure("sam", ref, **request, override_reason="   ")
    assert caught.value.field == "override_reason"

    made = desk.request_disclosure(
        "sam", ref, **request, override_reason="Child missing; dispatch unreachable for 20 min"
    )
    assert (made.number, made.status, made.decided_by) == (1, "disclosed", "sam")
    assert made.decided_at == desk.clock.now()
    assert made.data == ("subscriber", "ip_logs")
    assert made.override_reason == "Child missing; dispatch unreachable for 20 min"
    with desk.db.read() as session:
        record = session.exec(
            select(AuditRecord).where(AuditRecord.action == "disclosure.request")
        ).one()
    assert record.detail["override_reason"] == made.override_reason
    assert record.detail["status"] == "disclosed"
    view = desk.casework("ana", ref)
    assert [p.name for p in view.partners] == ["metro-pd"]  # the recipient is linked


def test_a_specialists_request_waits_for_a_supervisors_approval(
    desk: CaseworkService, clock: FakeClock
) -> None:
    ref = _open(desk, "edr")
    _verify_all(desk, ref)
    request: dict[str, Any] = {"data": ["location"], "to": "metro-pd", "basis": "us-emergency"}
    with pytest.raises(BadInput, match="nothing to override"):
        desk.request_disclosure("ana", ref, **request, override_reason="why not")
    asked = desk.request_disclosure("ana", ref, **request, accounts=2)
    assert (asked.status, asked.requested_by, asked.decided_by) == ("requested", "ana", None)
    with desk.db.read() as session:
        waiting = disclosures_awaiting_approval(session)
        case_id = waiting[0].case_id
        case = session.get(Case, case_id)
        assert case is not None
        flags = overdue_summary(session, [case], clock.now())[case_id]
    assert [(w.ref, w.disclosure.number, w.disclosure.to) for w in waiting] == [
        (ref, 1, "metro-pd")
    ]
    assert flags.disclosures_awaiting_approval == 1
    with pytest.raises(NotAllowed, match="supervisor"):
        desk.approve_disclosure("ana", ref, 1)
    clock.advance(minutes=7)
    approved = desk.approve_disclosure("sam", ref, 1)
    assert (approved.status, approved.decided_by) == ("disclosed", "sam")
    assert approved.decided_at == desk.clock.now()
    with pytest.raises(NothingToDo):
        desk.approve_disclosure("sam", ref, 1)
    with desk.db.read() as session:
        assert disclosures_awaiting_approval(session) == []
    with pytest.raises(NotFound):
        desk.approve_disclosure("sam", ref, 9)

    second = desk.request_disclosure(
        "ben", ref, data="content", to="state-police", basis="us-emergency"
    )
    assert second.number == 2
    with pytest.raises(BadInput) as caught:
        desk.decline_disclosure("sam", ref, 2, " ")
    assert caught.value.field == "reason"
    declined = desk.decline_disclosure("sam", ref, 2, "Content is not needed for the emergency")
    assert (declined.status, declined.decline_reason) == (
        "declined",
        "Content is not needed for the emergency",
    )
    assert _actions(desk.db)[-4:] == [
        "disclosure.request",
        "disclosure.approve",
        "disclosure.request",
        "disclosure.decline",
    ]
    assert _chain_ok(desk.db)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"data": "subscriber,ssn"}, "data"),
        ({"data": " , "}, "data"),
        ({"basis": "2702z"}, "basis"),
        ({"to": "gotham-pd"}, "to"),
        ({"to": "product-safety"}, "to"),
        ({"accounts": 0}, "accounts"),
    ],
)
def test_disclosure_bad_input_names_the_field(
    desk: CaseworkService, changes: dict[str, Any], field: str
) -> None:
    ref = _open(desk, "edr")
    _verify_all(desk, ref)
    request: dict[str, Any] = {"data": "subscriber", "to": "metro-pd", "basis": "us-emergency"}
    with pytest.raises(BadInput) as caught:
        desk.request_disclosure("sam", ref, **{**request, **changes})
    assert caught.value.field == field


def test_emergency_basis_needs_verification_on_any_case(desk: CaseworkService) -> None:
    threat = _open(desk, "threat_to_life")
    with pytest.raises(NotAllowed, match="incomplete"):
        desk.request_disclosure(
            "ana", threat, data="subscriber", to="metro-pd", basis="us-emergency"
        )
    legal = _open(desk, "le_request")
    made = desk.request_disclosure(
        "ana", legal, data="subscriber", to="metro-pd", basis="us-legal-process"
    )
    assert made.status == "requested"
    assert desk.casework("ana", legal).verification.required is False


def test_tipline_report_is_filed_once_and_starts_the_hold(
    desk: CaseworkService, clock: FakeClock
) -> None:
    ref = _open(desk, "csea")
    clock.advance(hours=2)
    with pytest.raises(BadInput) as caught:
        desk.file_report(
            "ana", ref, report_id="CT-1", filed_at=desk.clock.now() + timedelta(hours=1)
        )
    assert caught.value.field == "filed_at"
    with pytest.raises(BadInput) as caught:
        desk.file_report("ana", ref, report_id=" ")
    assert caught.value.field == "report_id"
    with pytest.raises(BadInput) as caught:
        desk.file_report("ana", ref, report_id="CT-1", clock="preserve_reported")
    assert caught.value.field == "clock"
    filed_at = T0 + timedelta(hours=1)
    tipline = desk.file_report("ben", ref, report_id="CT-118812", filed_at=filed_at)
    assert (tipline.state, tipline.outcome, tipline.reference) == ("done", "filed", "CT-118812")
    assert tipline.done_at == filed_at
    with pytest.raises(NothingToDo, match="already filed"):
        desk.file_report("ana", ref, report_id="CT-2")
    view = desk.casework("ana", ref)
    hold = next(c for c in view.clocks if c.name == "preserve_reported")
    assert hold.started_at == filed_at
    assert hold.due_at == datetime(2027, 3, 2, 10, 0, tzinfo=UTC)
    with desk.db.read() as session:
        record = session.exec(select(AuditRecord).where(AuditRecord.action == "clock.file")).one()
    assert record.detail == {
        "clock": "tipline",
        "report_id": "CT-118812",
        "filed_at": filed_at.isoformat(),
    }
    with pytest.raises(NothingToDo, match="no clock that is a hold that can be extended"):
        desk.extend_hold("ana", ref)


def test_preservation_extends_once_before_it_expires(
    desk: CaseworkService, clock: FakeClock
) -> None:
    ref = _open(desk, "preservation")
    clock.advance(days=80)
    extended = desk.extend_hold("ana", ref, note="Renewed request by letter of 20 May")
    assert extended.due_at == T0 + timedelta(days=180)
    assert (extended.extensions, extended.extensions_left, extended.state) == (1, 0, "ok")
    with pytest.raises(NotAllowed, match="extended once"):
        desk.extend_hold("ana", ref)

    late = _open(desk, "preservation")
    clock.advance(days=91)
    with pytest.raises(NotAllowed, match="already expired"):
        desk.extend_hold("ana", late)
    assert _actions(desk.db).count("clock.extend") == 1


def test_only_a_supervisor_waives_a_clock_and_says_why(desk: CaseworkService) -> None:
    ref = _open(desk, "csea")
    with pytest.raises(NotAllowed):
        desk.waive_clock("ana", ref, clock="tipline", reason="not CSEA")
    with pytest.raises(BadInput) as caught:
        desk.waive_clock("sam", ref, clock="tipline", reason="")
    assert caught.value.field == "reason"
    waived = desk.waive_clock(
        "sam", ref, clock="tipline", reason="Adult content, no minor involved"
    )
    assert (waived.state, waived.outcome) == ("done", "waived")
    with pytest.raises(NothingToDo):
        desk.waive_clock("sam", ref, clock="tipline", reason="again")


def test_containment_checklist_tracks_who_and_when(desk: CaseworkService, clock: FakeClock) -> None:
    ref = _open(desk, "doxxing")
    with pytest.raises(BadInput) as caught:
        desk.mark_contained("ana", ref, "content_remved")
    assert caught.value.field == "step"
    assert "did you mean 'content_removed'" in caught.value.message
    with pytest.raises(BadInput) as caught:
        desk.mark_contained("ana", ref, "evidence_preserved")
    assert caught.value.field == "reference"
    clock.advance(minutes=4)
    step = desk.mark_contained("ana", ref, "evidence_preserved", reference="sha256:9f86d0")
    assert (step.done, step.done_by, step.done_at, step.reference) == (
        True,
        "ana",
        desk.clock.now(),
        "sha256:9f86d0",
    )
    with pytest.raises(NothingToDo):
        desk.mark_contained("ben", ref, "evidence_preserved", reference="sha256:1")
    desk.mark_contained("ben", ref, "content_removed")
    view = desk.casework("ana", ref)
    assert [(c.step, c.done) for c in view.containment] == [
        ("content_removed", True),
        ("account_actioned", False),
        ("evidence_preserved", True),
        ("partner_notified", False),
    ]
    assert _actions(desk.db).count("containment.done") == 2


def test_a_desk_edits_a_categorys_checklist(desk: CaseworkService) -> None:
    document = tomllib.loads('[containment]\ndoxxing = ["content_removed", "victim_contacted"]')
    with pytest.raises(NotAllowed):
        desk.apply_settings("ana", document)
    ref = _open(desk, "doxxing")
    desk.mark_contained("ana", ref, "account_actioned")
    desk.apply_settings("sam", document)
    with pytest.raises(NothingToDo):
        desk.apply_settings("sam", document)
    view = desk.casework("ana", ref)
    # The new checklist, and the step done under the old one stays visible.
    assert [(c.step, c.done) for c in view.containment] == [
        ("content_removed", False),
        ("victim_contacted", False),
        ("account_actioned", True),
    ]
    desk.mark_contained("ana", ref, "victim_contacted")
    with pytest.raises(CaseworkConfigError):
        desk.apply_settings("sam", {"containment": {"doxxing": [1]}})
    assert _actions(desk.db).count("casework.settings") == 1


def test_partner_directory_is_kept_by_supervisors(desk: CaseworkService) -> None:
    with pytest.raises(NotAllowed):
        desk.add_partner(
            "ana",
            name="county-so",
            kind="law_enforcement",
            agency="County Sheriff",
            verified_channel="x",
        )
    with pytest.raises(BadInput) as caught:
        desk.add_partner("sam", name="county-so", kind="law_enforcement", agency="County Sheriff")
    assert caught.value.field == "verified_channel"
    with pytest.raises(BadInput) as caught:
        desk.add_partner("sam", name="county-so", kind="sheriff", agency="County Sheriff")
    assert caught.value.field == "kind"
    with pytest.raises(NothingToDo):
        desk.add_partner(
            "sam", name="metro-pd", kind="law_enforcement", agency="Metro", verified_channel="x"
        )
    ref = _open(desk, "threat_to_life")
    linked = desk.link_partner("ana", ref, "state-police")
    assert linked.agency == "State Police"
    with pytest.raises(NothingToDo):
        desk.link_partner("ana", ref, "state-police")
    assert _actions(desk.db).count("partner.add") == 3
    assert "partner.link" in _actions(desk.db)


def test_action_items_have_an_owner_a_due_time_and_go_overdue(
    desk: CaseworkService, clock: FakeClock
) -> None:
    ref = _open(desk, "threat_to_life")
    now = desk.clock.now()
    with pytest.raises(BadInput) as caught:
        desk.add_action("ana", ref, "Call back", owner="ana", partner="metro-pd")
    assert caught.value.field == "owner"
    with pytest.raises(BadInput) as caught:
        desk.add_action("ana", ref, "Call back")
    assert caught.value.field == "owner"
    with pytest.raises(BadInput) as caught:
        desk.add_action("ana", ref, "Call back", owner="nobody")
    assert caught.value.field == "owner"
    with pytest.raises(BadInput) as caught:
        desk.add_action("ana", ref, "Call back", owner="ben", due_at=now - timedelta(minutes=1))
    assert caught.value.field == "due"
    mine = desk.add_action(
        "ana", ref, "Call back the reporter", owner="ben", due_at=now + timedelta(hours=1)
    )
    theirs = desk.add_action(
        "ana", ref, "Welfare check", partner="metro-pd", due_at=now + timedelta(hours=4)
    )
    assert (mine.owner, mine.owner_kind, mine.overdue) == ("ben", "person", False)
    assert (theirs.owner, theirs.owner_kind) == ("metro-pd", "partner")

    clock.advance(hours=2)
    view = desk.casework("ana", ref)
    assert [(a.id, a.overdue) for a in view.actions] == [(mine.id, True), (theirs.id, False)]
    flags = overdue_summary_for(desk, [view.case_id])[view.case_id]
    assert (flags.overdue_actions, flags.open_actions) == (1, 2)
    assert flags.next_action_due_at == now + timedelta(hours=1)

    done = desk.close_action("ben", ref, mine.id)  # its owner may close it
    assert (done.status, done.completed_by, done.overdue) == ("done", "ben", False)
    with pytest.raises(NothingToDo):
        desk.close_action("ben", ref, mine.id)
    with pytest.raises(NotFound):
        desk.close_action("ana", ref, 999)
    cancelled = desk.close_action("sam", ref, theirs.id, status="cancelled")
    assert cancelled.status == "cancelled"
    assert _actions(desk.db)[-4:] == ["action.add", "action.add", "action.done", "action.cancel"]


def test_queue_summary_flags_clocks_overdue_items_and_pending_verification(
    desk: CaseworkService, clock: FakeClock
) -> None:
    csea, edr, plain = _open(desk, "csea"), _open(desk, "edr"), _open(desk, "other")
    with desk.db.read() as session:
        ids = {c.ref: c.id or 0 for c in session.exec(select(Case)).all()}
    clock.advance(hours=21)
    flags = overdue_summary_for(desk, list(ids.values()))
    assert ids[plain] not in flags
    tipline = flags[ids[csea]].clock
    assert tipline is not None
    assert (tipline.name, tipline.state, tipline.reminder_at) == (
        "tipline",
        "warn",
        T0 + timedelta(hours=20),
    )
    assert flags[ids[edr]].verification_pending is True
    assert flags[ids[edr]].clock is None


def test_hold_reminders_surface_even_when_the_case_is_resolved(
    desk: CaseworkService, clock: FakeClock
) -> None:
    ref = _open(desk, "preservation")
    desk.resolve("ana", ref)
    with desk.db.read() as session:
        assert clocks_needing_attention(session, desk.clock.now()) == []
    clock.advance(days=77)
    with desk.db.read() as session:
        due = clocks_needing_attention(session, desk.clock.now())
    assert [(d.ref, d.status, d.clock.name, d.clock.state) for d in due] == [
        (ref, "resolved", "preservation", "warn")
    ]


def test_sensitive_free_text_is_hidden_until_revealed(desk: CaseworkService) -> None:
    ref = _open(desk, "edr", sensitive=True)
    _verify_all(desk, ref)
    hidden = desk.casework("ana", ref)
    emergency = dict(hidden.verification.steps[2].facts)
    assert emergency["statement"] == "[sensitive: hidden until revealed]"
    assert emergency["danger"] == "death"
    assert dict(hidden.verification.steps[0].facts)["via"] == "+1 555 0100"
    assert "case.reveal" not in _actions(desk.db)
    shown = desk.casework("ana", ref, reveal=True)
    assert dict(shown.verification.steps[2].facts)["statement"] == EMERGENCY["statement"]
    assert shown.revealed is True
    assert _actions(desk.db)[-1] == "case.reveal"


def test_only_the_assignee_or_a_supervisor_works_an_assigned_case(desk: CaseworkService) -> None:
    ref = _open(desk, "edr")
    desk.acknowledge("ana", ref)
    with pytest.raises(NotAllowed, match="assigned to ana"):
        desk.record_verification("ben", ref, "identity", IDENTITY)
    desk.record_verification("sam", ref, "identity", IDENTITY)


# --- the yearly disclosure report --------------------------------------------


def _disclose(
    desk: CaseworkService, ref: str, to: str, basis: str = "us-emergency", accounts: int = 1
) -> None:
    desk.request_disclosure("sam", ref, data="subscriber", to=to, basis=basis, accounts=accounts)


def test_yearly_report_counts_emergency_disclosures_by_basis_and_agency(
    desk: CaseworkService, clock: FakeClock
) -> None:
    """A known year, counted by hand: us-emergency to Metro PD 3 disclosures (4 accounts),
    to State Police 1 (5); ca-exigent to Metro PD 1 (1)."""
    desk.apply_settings(
        "sam",
        {
            "disclosure_basis": {
                "ca-exigent": {"label": "Canada: exigent circumstances", "emergency": True}
            }
        },
    )
    clock.set(datetime(2025, 12, 31, 23, 0, tzinfo=UTC))
    old = _open(desk, "edr", severity=2)
    _verify_all(desk, old)
    _disclose(desk, old, "metro-pd")  # 2025: not counted
    pending = _open(desk, "edr", severity=2)
    _verify_all(desk, pending)
    desk.request_disclosure("ana", pending, data="subscriber", to="metro-pd", basis="us-emergency")

    clock.set(datetime(2026, 1, 1, 0, 30, tzinfo=UTC))
    desk.approve_disclosure("sam", pending, 1)  # requested in 2025, made in 2026: counted
    first = _open(desk, "edr", severity=2)
    _verify_all(desk, first)
    _disclose(desk, first, "metro-pd", accounts=2)
    _disclose(desk, first, "state-police", accounts=5)
    secret = _open(
        desk, "threat_to_life", severity=2, sensitive=True, details="Victim Jane Roe, 14 Elm St"
    )
    _verify_all(desk, secret)
    _disclose(desk, secret, "metro-pd")
    _disclose(desk, secret, "metro-pd", basis="ca-exigent")
    legal = _open(desk, "le_request")
    _disclose(desk, legal, "metro-pd", basis="us-legal-process")  # not an emergency basis
    declined = _open(desk, "edr", severity=2)
    _verify_all(desk, declined)
    desk.request_disclosure(
        "ana", declined, data="content", to="state-police", basis="us-emergency"
    )
    desk.decline_disclosure("sam", declined, 1, "not needed")
    clock.set(datetime(2027, 1, 1, 0, 0, tzinfo=UTC))
    late = _open(desk, "edr", severity=2)
    _verify_all(desk, late)
    _disclose(desk, late, "state-police")  # 2027: not counted

    with desk.db.read() as session:
        report = disclosure_report(session, 2026)
        secret_case = session.exec(select(Case).where(Case.ref == secret)).one()
        assert session.exec(select(Disclosure)).all()  # the rows exist; the report holds counts
    assert [(r.basis, r.agency, r.disclosures, r.accounts) for r in report.rows] == [
        ("ca-exigent", "Metro Police Department", 1, 1),
        ("us-emergency", "Metro Police Department", 3, 4),
        ("us-emergency", "State Police", 1, 5),
    ]
    assert (report.total_disclosures, report.total_accounts) == (5, 10)

    markdown = disclosure_report_markdown(report)
    assert markdown.splitlines()[0] == "# Emergency disclosures, 2026"
    assert (
        "| 18 U.S.C. 2702(b)(8) and (c)(4): emergency | Metro Police Department | 3 | 4 |"
        in markdown
    )
    assert "| **Total** | | **5** | **10** |" in markdown
    assert report_csv(report) == (
        "year,basis,basis_label,agency,disclosures,accounts\n"
        "2026,ca-exigent,Canada: exigent circumstances,Metro Police Department,1,1\n"
        "2026,us-emergency,18 U.S.C. 2702(b)(8) and (c)(4): emergency,Metro Police Department,3,4\n"
        "2026,us-emergency,18 U.S.C. 2702(b)(8) and (c)(4): emergency,State Police,1,5\n"
    )
    for text in (markdown, report_csv(report)):
        for secret_bit in (secret, secret_case.title, "Jane Roe", "Elm St", "Sgt. Lee", "4471"):
            assert secret_bit not in text
    with desk.db.read() as session:
        assert disclosure_report(session, 2024).rows == ()
    quiet_year = disclosure_report_for(desk, 2024)
    assert "No emergency disclosures" in disclosure_report_markdown(quiet_year)
    assert _chain_ok(desk.db)


def test_report_cells_never_become_spreadsheet_formulas(desk: CaseworkService) -> None:
    desk.add_partner(
        "sam", name="odd", kind="law_enforcement", agency="=HYPERLINK(1)", verified_channel="x"
    )
    ref = _open(desk, "edr", severity=2)
    _verify_all(desk, ref)
    _disclose(desk, ref, "odd")
    csv_text = report_csv(disclosure_report_for(desk, 2026))
    assert ",'=HYPERLINK(1)," in csv_text


def test_view_of_an_unknown_case_is_not_found(desk: CaseworkService) -> None:
    with desk.db.read() as session, pytest.raises(NotFound):
        casework_view(session, 12345, desk.clock.now())
    with pytest.raises(NotFound):
        desk.casework("ana", "ESC-9999")

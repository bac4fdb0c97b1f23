"""The demo desk: `vigil demo` fills a database with a month of a realistic escalation desk.

Nothing here writes a case, a page or an audit record by itself. The demo applies a team file
(`demo_team.toml`, next to this module), then replays a month of desk work on a simulated
clock: at each moment it sets the clock, calls the case service as the person who would act,
and runs the escalation engine whenever a step falls due, so the timelines, pages, deliveries
and the audit chain are exactly what the product makes (and `vigil audit verify` passes).

The month is drawn from `random.Random(seed)`: the same `now` and seed give the same desk.
Arrivals are heavier in the US daytime, severities follow the category, most cases are
acknowledged within their SLA and some are not, a few climb the escalation chain and one or
two exhaust it. A handful are live at `now`: some still ringing (a sev1 pages ana, whose
console the README opens), some acknowledged at various stages, one of them a CSEA report.
Case text reads like a desk's day and stays abstract: no case describes harm.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib import resources
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text
from sqlmodel import col, func, select

from app.core.clock import FakeClock
from app.core.errors import NothingToDo
from app.delivery.local import SENT, DesktopOutcome, claim_my_pages, record_desktop
from app.delivery.webhook import process_webhook_outbox
from app.engine.cycle import EscalationEngine
from app.services.cases import CaseService
from app.services.casework.service import CaseworkService
from app.services.team.apply import apply_team
from app.services.team.parse import parse_team
from app.services.team.spec import TeamOverride, TeamSpec
from data import audit
from data.db import Database
from data.domain import Category, ContactKind, Stage, Status
from data.models import Case, ContactMethod, Page, Policy, Responder, Setting
from data.oncall import Holiday, Rotation, Schedule
from data.schema import every_table

DEMO_TEAM = "demo_team.toml"
# Present only in a database the demo built: such a database is rebuilt without --reset.
DEMO_MARKER = "demo.built_at"
DEFAULT_SEED = 7
HISTORY = timedelta(days=30)
HISTORY_CASES = 200
# Historical cases open between HISTORY ago and this long ago; their work ends before
# `now - SETTLED`, so the live cases are the only open ones.
QUIET_BEFORE_NOW = timedelta(hours=6)
SETTLED = timedelta(minutes=20)
ENGINE_NAME = "demo"
# The integration account that relays PagerDuty and Alertmanager events into the desk.
RELAY = "sam"
# Who covers primary right now, so the live sev1 rings at the README's console.
LIVE_COVER = "ana"
SUPERVISORS = {"Australia/Sydney": "grace", "America/New_York": "dana"}
PARTNERS = (
    {
        "name": "metro-pd",
        "kind": "law_enforcement",
        "agency": "Metro Police",
        "contact": "liaison@metropolice.example",
        "verified_channel": "Metro Police duty desk +1 555 0100, from the state police directory",
    },
    {
        "name": "harbour-police",
        "kind": "law_enforcement",
        "agency": "Harbour District Police",
        "verified_channel": "Harbour District Police Operations Centre +61 2 5550 1234, "
        "from the police force's published directory",
    },
    {
        "name": "safeline",
        "kind": "ngo",
        "agency": "SafeLine crisis helpline",
        "contact": "partners@safeline.example",
    },
)
"""The partner directory casework links cases to and discloses to, as a supervisor keeps it."""
NEW_YORK = ZoneInfo("America/New_York")

EMERGENCY = "emergency"
EMERGENCY_ROUTED = {Category.EDR, Category.CSEA, Category.THREAT_TO_LIFE, Category.SELF_HARM}
# Minutes after opening when an unacknowledged case has run through each policy of
# demo_team.toml: 5m/10m steps repeated twice, and 30m/60m steps repeated once.
EXHAUSTED_AFTER = {"emergency": 45.0, "standard": 180.0}


# --- the words of the desk -----------------------------------------------------------------

AGENCIES = (
    "Metro Police",
    "Harbour District Police",
    "Bayside Police Department",
    "Riverbend County Sheriff's Office",
    "State Highway Patrol",
    "Northshore Police Service",
    "Capital Region Police",
    "Westfield Police Department",
    "Lakeside County Sheriff's Office",
    "Coastal District Police",
)
OFFICERS = (
    "Det. Sgt. L. Moreno",
    "Det. K. Fraser",
    "Sgt. P. Osei",
    "Const. R. Haddad",
    "Det. J. Whitaker",
    "Lt. M. Duarte",
    "Det. Sen. Const. E. Byrne",
    "Officer T. Lindqvist",
)
CITIES = (
    "Parramatta",
    "Newcastle",
    "Wollongong",
    "Penrith",
    "Brooklyn",
    "Queens",
    "Albany",
    "Newark",
    "Pasadena",
    "Long Beach",
    "Fresno",
    "Sacramento",
)
SURFACES = (
    "group chat",
    "direct messages",
    "live video",
    "short video",
    "comments",
    "marketplace listing",
    "profile page",
    "stories",
)
VENUES = (
    "a high school",
    "a shopping centre",
    "a stadium event",
    "a university campus",
    "a music festival",
    "a train station",
    "a place of worship",
    "a county office",
)
REPORTERS = (
    "a user report",
    "the trusted flagger programme",
    "the proactive detection queue",
    "a partner platform",
    "a school safety officer",
)


@dataclass(frozen=True)
class CategoryText:
    """How one category's cases read: titles, details, notes while working, closing note."""

    titles: tuple[str, ...]
    details: tuple[str, ...]
    notes: tuple[str, ...]
    closing: tuple[str, ...]
    stages: tuple[Stage, ...]  # the work stages such a case usually passes through
    severities: tuple[int, int, int, int]  # weights of sev1..sev4
    weight: float  # share of arrivals


TEXT: dict[Category, CategoryText] = {
    Category.EDR: CategoryText(
        titles=(
            "EDR: {agency} request — missing teen, last seen {hhmm}",
            "EDR: {agency} — missing adult with a medical condition, last seen {hhmm}",
            "EDR: {agency} — welfare concern after threatening messages",
            "EDR: {agency} — suspected abduction, subscriber details requested",
            "EDR: {agency} — child not collected from school, account activity requested",
            "EDR: {agency} — vulnerable person missing from a care home",
        ),
        details=(
            "Requesting officer: {officer}, {agency} ({city}). Identity confirmed by callback "
            "through the agency's published switchboard. Stated emergency: the account holder "
            "has not been seen since {hhmm} and their phone is off. Requested: basic subscriber "
            "information and login IP addresses for the last 48 hours. Basis: emergency "
            "disclosure on a good-faith belief of imminent risk; legal process to follow.",
            "Requesting officer: {officer}, {agency} ({city}). Callback verified. Stated "
            "emergency: family report the person left home at {hhmm} without the medication "
            "they need daily. Requested: most recent login location and device. Basis: "
            "emergency disclosure; the agency will follow with a court order.",
            "Requesting officer: {officer}, {agency}. Callback verified. Stated emergency: a "
            "child is believed to have been taken by a non-custodial parent who uses this "
            "account. Requested: registered phone number and IP addresses since {hhmm}.",
        ),
        notes=(
            "Callback through the agency's switchboard matches the requester.",
            "Disclosed subscriber details and 48h of login IPs under the emergency provision.",
            "Agency asked for 72h of IP history; declined pending legal process.",
            "Waiting on the agency to confirm receipt of the disclosure.",
        ),
        closing=(
            "{agency} confirms the person was located safe; disclosure logged for the "
            "follow-up legal process.",
            "Disclosure complete and logged; agency confirmed receipt.",
        ),
        stages=(Stage.INVESTIGATING, Stage.AWAITING_PARTNER),
        severities=(3, 5, 2, 0),
        weight=0.18,
    ),
    Category.CSEA: CategoryText(
        titles=(
            "CSEA: hash match on uploaded media — {surface}",
            "CSEA: classifier hit queued for specialist review — {surface}",
            "CSEA: user report escalated by Tier 1 — {surface}",
            "CSEA: possible grooming indicators — account {acct}",
            "CSEA: partner hotline referral — {n} accounts",
            "CSEA: re-upload of previously actioned material — {surface}",
        ),
        details=(
            "Restricted: handle under the CSEA protocol only. Signal: match against the "
            "industry hash list. Surface: {surface}; account {acct}. Done so far: content "
            "hidden from public view and preserved; account suspended pending review. Next: "
            "specialist confirmation, report to the national clearinghouse, law-enforcement "
            "referral if a location is identified.",
            "Restricted: handle under the CSEA protocol only. Signal: classifier score above "
            "the review threshold, confirmed by Tier 1. Account {acct} on {surface}. Content "
            "preserved and removed from view; linked accounts queued for review.",
            "Restricted: handle under the CSEA protocol only. Signal: referral from a partner "
            "hotline naming {n} accounts. Accounts restricted and data preserved; awaiting "
            "specialist review before reporting.",
        ),
        notes=(
            "Specialist review done; confirmed under the protocol.",
            "Report filed with the national clearinghouse; reference in the restricted record.",
            "Linked accounts found and suspended.",
            "Preservation placed for law enforcement.",
        ),
        closing=(
            "Reported, actioned and preserved; closed under the protocol.",
            "Report filed and accounts actioned; preservation confirmed.",
        ),
        stages=(Stage.INVESTIGATING, Stage.CONTAINED),
        severities=(1, 6, 2, 0),
        weight=0.10,
    ),
    Category.THREAT_TO_LIFE: CategoryText(
        titles=(
            "Threat to life: post names {venue} and a date — {city}",
            "Threat to life: threat against a named person in {surface}",
            "Threat to life: livestream comment threatening {venue}",
            "Threat to life: ex-partner threats reported by the target",
            "Threat to life: threat against {venue} ahead of an event — {city}",
        ),
        details=(
            "Source: {reporter}. The post names a place and a time. The account was "
            "created {n} days ago. Content preserved; liaison with {agency} opened for a "
            "threat assessment.",
            "Source: {reporter}. The messages name the person and their workplace in "
            "{city}. Several accounts repeated them within an hour. Content preserved; "
            "{agency} contacted through its liaison line.",
        ),
        notes=(
            "Threat assessment: specific and credible; escalated to {agency}.",
            "Liaison officer acknowledged and is following up.",
            "Account suspended; content preserved.",
            "{agency} reports the person of concern has been spoken to.",
        ),
        closing=(
            "{agency} has taken over; account actioned and content preserved.",
            "Agency follow-up complete; no further risk identified.",
        ),
        stages=(Stage.INVESTIGATING, Stage.AWAITING_PARTNER, Stage.CONTAINED),
        severities=(6, 4, 1, 0),
        weight=0.10,
    ),
    Category.SELF_HARM: CategoryText(
        titles=(
            "Self-harm: user stated intent in a live video — {city}",
            "Self-harm: concerning messages reported by a friend — {surface}",
            "Self-harm: farewell post flagged by the safety model",
            "Self-harm: repeat reporter concerned about a contact",
            "Self-harm: helpline partner requests a welfare check — {city}",
        ),
        details=(
            "Signal: {reporter}. Risk assessed as high under the welfare protocol. In-app "
            "support resources shown. Approximate location from recent activity: {city}. "
            "Welfare check requested from {agency}.",
            "Signal: a friend's report through {surface}. Risk assessed as moderate. Support "
            "resources sent; the friend is in contact with the person. No location yet.",
        ),
        notes=(
            "Support resources sent; no reply yet.",
            "Welfare check requested from {agency}.",
            "{agency} confirms officers attended; the person is safe and with family.",
            "Reporter updated with support resources.",
        ),
        closing=(
            "Welfare check completed; person safe. Resources sent.",
            "Person in contact with a support service; case closed under the protocol.",
        ),
        stages=(Stage.INVESTIGATING, Stage.AWAITING_PARTNER),
        severities=(4, 5, 1, 0),
        weight=0.10,
    ),
    Category.VIOLENT_EXTREMISM: CategoryText(
        titles=(
            "Violent extremism: propaganda re-uploads, {n} copies — {surface}",
            "Violent extremism: hash-sharing consortium match",
            "Violent extremism: recruitment channel reported by a researcher",
            "Violent extremism: attack footage circulating — crisis protocol review",
            "Violent extremism: designated group's logo in profile images, {n} accounts",
        ),
        details=(
            "Source: {reporter}. {n} items across several accounts on {surface}. Matching "
            "content removed and hashes shared with the consortium; accounts queued for "
            "network review.",
            "Source: consortium hash list. Uploads matched within minutes of posting on "
            "{surface}. Matcher holding; reviewing whether the crisis protocol applies.",
        ),
        notes=(
            "Hashes shared with the consortium.",
            "Network review found {n} linked accounts.",
            "Crisis protocol not triggered: no live event.",
            "Re-uploads slowing; keeping the matcher on.",
        ),
        closing=("Content removed and hashed; network actioned.",),
        stages=(Stage.INVESTIGATING, Stage.CONTAINED),
        severities=(0, 4, 5, 1),
        weight=0.07,
    ),
    Category.DOXXING: CategoryText(
        titles=(
            "Doxxing: home address of a journalist posted — {surface}",
            "Doxxing: election staff phone numbers shared — {surface}",
            "Doxxing: student's school and address posted — {city}",
            "Doxxing: healthcare worker's home address shared — {surface}",
            "Doxxing: streamer's location revealed during a live video",
        ),
        details=(
            "Source: {reporter}. Personal information posted: home address and phone "
            "number. {n} posts and shares found; removing under the private-information "
            "policy.",
            "Reported by the person concerned. Their workplace and street were posted in "
            "{surface}. {n} shares so far.",
        ),
        notes=(
            "Posts removed; reporter informed.",
            "Search for re-shares found {n} more; removed.",
            "The reporter's employer safety team is aware, at the reporter's request.",
        ),
        closing=("Information removed; accounts actioned.",),
        stages=(Stage.INVESTIGATING, Stage.CONTAINED),
        severities=(0, 2, 6, 2),
        weight=0.08,
    ),
    Category.LE_REQUEST: CategoryText(
        titles=(
            "Legal process: subpoena from {agency} — subscriber records",
            "Legal process: search warrant for {n} accounts — {agency}",
            "Legal process: court order for account records — {agency}",
            "Legal process: MLAT request via the central authority",
            "Legal process: follow-up warrant for an earlier emergency disclosure",
        ),
        details=(
            "Received through the law-enforcement portal from {officer}, {agency}. Scope: "
            "subscriber records and login history for {n} accounts. Due in 14 days. Service "
            "and jurisdiction checked; scope under review with legal.",
            "Received from {officer}, {agency}. Scope: account records for a 30-day window. "
            "Due in 10 days.",
        ),
        notes=(
            "Scope confirmed with legal.",
            "Asked the agency to narrow the date range.",
            "Records produced through the portal.",
            "Production sent; awaiting receipt confirmation.",
        ),
        closing=("Production complete and logged.", "Records produced; request closed."),
        stages=(Stage.INVESTIGATING, Stage.AWAITING_PARTNER),
        severities=(0, 1, 5, 5),
        weight=0.15,
    ),
    Category.PRESERVATION: CategoryText(
        titles=(
            "Preservation: 90-day hold requested by {agency}",
            "Preservation: extension of an existing hold, {n} accounts",
            "Preservation: hold ahead of a warrant — {agency}",
            "Preservation: hold for {n} accounts linked to an open case",
        ),
        details=(
            "Request from {officer}, {agency}. Accounts: {n}. Hold to be placed for 90 days; "
            "the requester was told legal process is needed for disclosure.",
        ),
        notes=(
            "Hold placed; expires in 90 days.",
            "Confirmed with the requester; a warrant is expected next week.",
            "Hold extended on request.",
        ),
        closing=("Hold in place and recorded.",),
        stages=(Stage.INVESTIGATING,),
        severities=(0, 0, 3, 7),
        weight=0.15,
    ),
    Category.OTHER: CategoryText(
        titles=(
            "Other: media enquiry about a reported safety incident",
            "Other: suspected mass-report campaign against {n} accounts",
            "Other: partner escalation mailbox bouncing",
            "Other: duplicate tickets from the partner escalation channel",
        ),
        details=(
            "Raised by the desk. Needs a decision from the on-call specialist and a note for "
            "the next shift.",
        ),
        notes=(
            "Comms team has the holding statement.",
            "Vendor ticket opened.",
            "Checked with the supervisor; proceeding.",
        ),
        closing=("Resolved; no further action.", "Handled; noted for the weekly review."),
        stages=(Stage.INVESTIGATING,),
        severities=(0, 1, 4, 5),
        weight=0.07,
    ),
}

# Monitoring alerts relayed from Alertmanager: the desk's own tooling paging the desk.
ALERTS = (
    ("Intake relay: reporting form errors above 5% for 10 minutes", "ReportFormErrors"),
    ("Intake relay: law-enforcement portal webhook failing", "PortalWebhookFailing"),
    ("Safety-model review queue backlog above 500", "ReviewQueueBacklog"),
)
ALERT_NOTES = ("Relay restarted; error rate back to baseline.", "Queue drained.")
ACTION_ITEMS = (
    "Add the {agency} callback number to the directory",
    "Review the night-time step-2 delay of the emergency policy",
    "Write up the case for the weekly review",
    "Check the re-upload matcher thresholds",
)


# --- the plan: what happens to each case, drawn before anything is stored ------------------


@dataclass
class CasePlan:
    """One case's month: when it opens, what it says, and when each person acts on it.

    Times of later actions are offsets from the opening; who acts is decided when the action
    runs, from what the engine paged (the acknowledger) and whom the case is assigned to.
    """

    opened_at: datetime
    category: Category
    severity: int
    title: str
    details: str
    words: _Words  # the case's agency, city, ... for its notes
    source: str = "vigil"
    opener: str = RELAY
    policy: str | None = None
    dedup_key: str | None = None
    duplicate_after: timedelta | None = None
    ack_after: timedelta | None = None
    stages: list[tuple[timedelta, str]] = field(default_factory=list)
    notes: list[tuple[timedelta, str]] = field(default_factory=list)
    reveal_after: timedelta | None = None
    reassign: tuple[timedelta, timedelta] | None = None  # (when, new assignee acks after)
    action_item: tuple[timedelta, str, str] | None = None  # (when, title, owner)
    resolve_after: timedelta | None = None
    closing_note: str = ""
    rings_at_console: bool = False  # live and unacknowledged: its pages wait for consoles


def _minutes(value: float) -> timedelta:
    return timedelta(seconds=round(value * 60))


def _local_hour(at: datetime, zone: ZoneInfo) -> int:
    return at.astimezone(zone).hour


def _arrival_weight(at: datetime) -> float:
    """How busy the desk is at `at`: most reports arrive in the US daytime."""
    local = at.astimezone(NEW_YORK)
    hour = local.hour
    if 9 <= hour < 18:
        weight = 1.6
    elif 6 <= hour < 9 or 18 <= hour < 22:
        weight = 1.0
    else:
        weight = 0.4
    return weight * (0.75 if local.weekday() >= 5 else 1.0)


def _arrivals(rng: random.Random, start: datetime, end: datetime, count: int) -> list[datetime]:
    """`count` opening times: given their number, a Poisson process's arrivals are
    independent draws from its rate, so draw hours by weight and minutes uniformly."""
    hours = []
    at = start.replace(minute=0, second=0, microsecond=0)
    while at < end:
        hours.append(at)
        at += timedelta(hours=1)
    weights = [_arrival_weight(hour) for hour in hours]
    times = []
    for hour in rng.choices(hours, weights, k=count):
        moment = hour + timedelta(seconds=rng.randrange(3600))
        times.append(min(max(moment, start), end))
    return sorted(times)


class _Words:
    """Fills one case's text from the pools, consistently (one agency, one city per case)."""

    def __init__(self, rng: random.Random, at: datetime) -> None:
        local = at.astimezone(NEW_YORK) - timedelta(minutes=rng.randrange(30, 240))
        self.values = {
            "agency": rng.choice(AGENCIES),
            "officer": rng.choice(OFFICERS),
            "city": rng.choice(CITIES),
            "surface": rng.choice(SURFACES),
            "venue": rng.choice(VENUES),
            "reporter": rng.choice(REPORTERS),
            "acct": str(rng.randrange(10_000_000, 99_999_999)),
            "n": str(rng.randrange(2, 9)),
            "hhmm": local.strftime("%H:%M"),
        }

    def fill(self, template: str) -> str:
        return template.format(**self.values)


def _severity(rng: random.Random, category: Category) -> int:
    return rng.choices((1, 2, 3, 4), TEXT[category].severities)[0]


def _policy_name(category: Category, severity: int) -> str:
    return EMERGENCY if category in EMERGENCY_ROUTED or severity <= 2 else "standard"


def _ack_minutes(rng: random.Random, policy: str) -> float:
    """Mostly before the next step; some after it; a few into the next round."""
    roll = rng.random()
    if policy == EMERGENCY:  # pages at 0, 5, 15, 20, 30, 35 minutes
        if roll < 0.78:
            return rng.uniform(0.5, 4.8)
        if roll < 0.94:
            return rng.uniform(5.3, 14.5)
        return rng.uniform(15.3, 29.0)
    # standard: pages at 0, 30, 90, 120 minutes
    if roll < 0.8:
        return rng.uniform(2.0, 29.0)
    if roll < 0.95:
        return rng.uniform(31.0, 85.0)
    return rng.uniform(91.0, 170.0)


def _work_minutes(rng: random.Random, severity: int) -> float:
    """How long the work takes after acknowledgement, by severity."""
    low, high = {1: (40, 240), 2: (60, 480), 3: (180, 1800), 4: (360, 5760)}[severity]
    return rng.uniform(low, high)


def _opener(rng: random.Random, at: datetime, team: Sequence[tuple[str, str]]) -> str:
    """A specialist at work at `at` logs a case typed in by hand."""
    awake = [handle for handle, zone in team if 8 <= _local_hour(at, ZoneInfo(zone)) < 20]
    return rng.choice(awake) if awake else _supervisor_awake(at)


def _supervisor_awake(at: datetime) -> str:
    sydney = _local_hour(at, ZoneInfo("Australia/Sydney"))
    return SUPERVISORS["Australia/Sydney" if 7 <= sydney < 19 else "America/New_York"]


def _plan_work(rng: random.Random, plan: CasePlan, ack_after: timedelta, work: timedelta) -> None:
    """Stages, notes, maybe a reveal, and the resolution, between ack and `ack + work`."""
    words = plan.words
    corpus = TEXT[plan.category]
    plan.ack_after = ack_after
    done = ack_after + work
    if rng.random() < 0.85:
        first = ack_after + min(_minutes(rng.uniform(1, 8)), work * 0.2)
        plan.stages.append((first, Stage.INVESTIGATING.value))
        later = [s for s in corpus.stages if s != Stage.INVESTIGATING]
        for index, stage in enumerate(later):
            if rng.random() < 0.6:
                share = rng.uniform(0.3 + 0.3 * index, 0.55 + 0.3 * index)
                plan.stages.append((ack_after + work * min(share, 0.9), stage.value))
    pool = list(ALERT_NOTES if plan.source == "alertmanager" else corpus.notes)
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2))):
        if not pool:
            break
        note = pool.pop(rng.randrange(len(pool)))
        plan.notes.append((ack_after + work * rng.uniform(0.1, 0.95), words.fill(note)))
    plan.notes.sort()
    if plan.category == Category.CSEA:
        plan.reveal_after = ack_after + _minutes(rng.uniform(0.5, 3))
    plan.resolve_after = done
    if rng.random() < 0.85:
        plan.closing_note = words.fill(rng.choice(corpus.closing))


def _new_case(rng: random.Random, at: datetime, category: Category, severity: int) -> CasePlan:
    words = _Words(rng, at)
    corpus = TEXT[category]
    plan = CasePlan(
        opened_at=at,
        category=category,
        severity=severity,
        title=words.fill(rng.choice(corpus.titles)),
        details=words.fill(rng.choice(corpus.details)),
        policy=EMERGENCY if severity <= 2 and category not in EMERGENCY_ROUTED else None,
        words=words,
    )
    automated = {Category.CSEA: 0.5, Category.VIOLENT_EXTREMISM: 0.5, Category.EDR: 0.3}
    if category == Category.OTHER and rng.random() < 0.5:
        title, alert = rng.choice(ALERTS)
        plan.title, plan.source = title, "alertmanager"
        plan.details = (
            f"Alertmanager: {alert} firing. Runbook: check the intake relay and its queue "
            "workers; page the platform team if it persists."
        )
        plan.dedup_key = f"alertmanager:{rng.getrandbits(64):016x}"
    elif rng.random() < automated.get(category, 0.0):
        plan.source = "pagerduty"
        prefix = "leportal" if category == Category.EDR else "hashmatch"
        plan.dedup_key = f"{prefix}:{rng.getrandbits(40):010x}"
    return plan


def plan_history(
    now: datetime, rng: random.Random, team: Sequence[tuple[str, str]]
) -> list[CasePlan]:
    """The month before `now`: HISTORY_CASES cases, every category, all settled by `now`.

    `team` lists the specialists (handle, time zone) who may type a case in.
    """
    start, end = now - HISTORY, now - QUIET_BEFORE_NOW
    settle_by = now - SETTLED
    times = _arrivals(rng, start, end, HISTORY_CASES)
    categories = list(Category)
    categories += rng.choices(
        list(Category), [TEXT[c].weight for c in Category], k=len(times) - len(categories)
    )
    rng.shuffle(categories)
    plans = []
    for at, category in zip(times, categories, strict=True):
        severity = _severity(rng, category)
        plan = _new_case(rng, at, category, severity)
        if plan.source == "vigil":
            plan.opener = _opener(rng, at, team)
        policy = _policy_name(category, severity)
        ack = _minutes(_ack_minutes(rng, policy))
        work = _minutes(_work_minutes(rng, severity))
        if at + ack + work > settle_by:
            work = (settle_by - at - ack) * rng.uniform(0.6, 0.95)
        _plan_work(rng, plan, ack, work)
        if plan.dedup_key and rng.random() < 0.35:
            plan.duplicate_after = _minutes(rng.uniform(0.5, 4.0))
        plans.append(plan)
    _mark_rare_paths(rng, plans, settle_by)
    return plans


def _mark_rare_paths(rng: random.Random, plans: list[CasePlan], settle_by: datetime) -> None:
    """Two cases ring until their chain is exhausted; a few are reassigned; some sev1
    cases leave an action item behind."""
    for policy in (EMERGENCY, "standard"):
        candidates = [
            p
            for p in plans
            if _policy_name(p.category, p.severity) == policy
            and p.resolve_after is not None
            and p.opened_at + p.resolve_after + timedelta(hours=4) < settle_by
        ]
        chosen = rng.choice(candidates)
        late = _minutes(EXHAUSTED_AFTER[policy] + rng.uniform(3, 15))
        shift = late - (chosen.ack_after or timedelta(0))
        _shift_work(chosen, shift)
    long_cases = [p for p in plans if p.resolve_after and p.ack_after and p.severity >= 2]
    for plan in rng.sample(long_cases, 6):
        assert plan.ack_after is not None
        assert plan.resolve_after is not None
        when = plan.ack_after + (plan.resolve_after - plan.ack_after) * rng.uniform(0.2, 0.4)
        plan.reassign = (when, _minutes(rng.uniform(1, 4)))
    for plan in plans:
        if plan.severity == 1 and plan.resolve_after and rng.random() < 0.4:
            title = plan.words.fill(rng.choice(ACTION_ITEMS))
            owner = rng.choice(tuple(SUPERVISORS.values()))
            plan.action_item = (plan.resolve_after - timedelta(minutes=2), title, owner)


def _shift_work(plan: CasePlan, shift: timedelta) -> None:
    """Move every step after opening by `shift` (a later acknowledgement delays the rest)."""
    assert plan.ack_after is not None
    plan.ack_after += shift
    plan.stages = [(at + shift, stage) for at, stage in plan.stages]
    plan.notes = [(at + shift, note) for at, note in plan.notes]
    if plan.reveal_after is not None:
        plan.reveal_after += shift
    if plan.resolve_after is not None:
        plan.resolve_after += shift


def plan_live(now: datetime, rng: random.Random) -> list[CasePlan]:
    """The cases open at `now`: three ringing, four acknowledged at various stages."""

    def case(ago: float, category: Category, severity: int) -> CasePlan:
        return _new_case(rng, now - _minutes(ago), category, severity)

    sev1 = case(3, Category.THREAT_TO_LIFE, 1)
    sev1.words.values["city"] = "Parramatta"  # ana's side of the desk; title and details agree
    sev1.title = sev1.words.fill("Threat to life: post names a school and tomorrow's date — {city}")
    sev1.details = sev1.words.fill(TEXT[Category.THREAT_TO_LIFE].details[0])  # "the post"
    sev1.source = "pagerduty"
    sev1.dedup_key = f"flagger:{rng.getrandbits(40):010x}"
    edr = case(9, Category.EDR, 2)
    edr.opener = "priya"
    doxx = case(18, Category.DOXXING, 3)
    doxx.source, doxx.opener = "pagerduty", RELAY
    doxx.dedup_key = f"report-cluster:{rng.getrandbits(40):010x}"
    doxx.duplicate_after = _minutes(11)
    ringing = [sev1, edr, doxx]
    for plan in ringing:
        plan.rings_at_console = True

    csea = case(50, Category.CSEA, 2)
    csea.source, csea.opener = "pagerduty", RELAY
    csea.dedup_key = f"hashmatch:{rng.getrandbits(40):010x}"
    csea.ack_after = _minutes(3)
    csea.reveal_after = _minutes(5)
    csea.stages = [(_minutes(9), Stage.INVESTIGATING.value)]
    csea.notes = [(_minutes(21), "Specialist review done; confirmed under the protocol.")]

    welfare = case(35, Category.SELF_HARM, 1)
    welfare.opener = "ben"
    welfare.ack_after = _minutes(2)
    welfare.stages = [
        (_minutes(6), Stage.INVESTIGATING.value),
        (_minutes(12), Stage.AWAITING_PARTNER.value),
    ]
    note = welfare.words.fill("Welfare check requested from {agency}.")
    welfare.notes = [(_minutes(11), note)]

    warrant = case(40, Category.LE_REQUEST, 3)
    warrant.opener = "marcus"
    warrant.ack_after = _minutes(22)

    extremism = case(100, Category.VIOLENT_EXTREMISM, 2)
    extremism.opener = "priya"
    extremism.ack_after = _minutes(4)
    extremism.stages = [
        (_minutes(10), Stage.INVESTIGATING.value),
        (_minutes(55), Stage.CONTAINED.value),
    ]
    extremism.notes = [(_minutes(56), "Re-uploads slowing; keeping the matcher on.")]
    return [*ringing, csea, welfare, warrant, extremism]


# --- the simulation: the plan replayed through the services and the engine -----------------


def _demo_receiver(request: httpx.Request) -> httpx.Response:
    """Stands in for the demo webhook's receiver: every delivery is accepted."""
    return httpx.Response(200)


@dataclass(order=True)
class _Event:
    at: datetime
    order: int
    run: Callable[[], object] = field(compare=False)


class _Desk:
    """Replays plans on a fake clock; runs the engine each time an escalation falls due."""

    def __init__(self, db: Database, clock: FakeClock, rng: random.Random) -> None:
        self.db = db
        self.clock = clock
        self.rng = rng
        self.outbox_rng = random.Random(0)  # backoff jitter; the demo receiver never fails
        self.cases = CaseService(db, clock)
        self.casework = CaseworkService(db, clock)
        self.engine = EscalationEngine(db, clock, name=ENGINE_NAME)
        self.webhooks = httpx.MockTransport(_demo_receiver)
        self.events: list[_Event] = []
        self.order = itertools.count()
        self.refs: dict[int, str] = {}  # id(plan) -> case ref
        self.assignees: dict[str, str] = {}  # ref -> handle, as the service last left it
        self.quiet: set[str] = set()  # refs whose pages wait for a real console
        self.last_page_id = 0
        # When each open case next escalates, by case id: read after the engine ran, kept
        # up to date from what the case service returns in between.
        self._due: dict[int, datetime] | None = None
        with db.read() as session:
            self.handles = {
                rid: handle
                for rid, handle in session.exec(select(Responder.id, Responder.handle)).all()
                if rid is not None
            }
            self.webhook_ids = set(
                session.exec(
                    select(ContactMethod.responder_id).where(
                        ContactMethod.kind == ContactKind.WEBHOOK.value
                    )
                ).all()
            )

    def at(self, when: datetime, run: Callable[[], object]) -> None:
        heapq.heappush(self.events, _Event(when, next(self.order), run))

    def run_until(self, end: datetime) -> None:
        while self.events and self.events[0].at <= end:
            event = heapq.heappop(self.events)
            self._escalate_until(event.at)
            self.clock.set(max(event.at, self.clock.now()))
            event.run()
        self._escalate_until(end)
        self.clock.set(max(end, self.clock.now()))

    # -- the engine and the channels ------------------------------------------------------

    def _next_due(self) -> tuple[datetime | None, list[int]]:
        """The next escalation time and the cases due then."""
        if self._due is None:
            with self.db.read() as session:
                rows = session.exec(
                    select(Case.id, Case.next_escalation_at).where(
                        col(Case.status).in_([Status.TRIGGERED.value, Status.ACKNOWLEDGED.value]),
                        col(Case.next_escalation_at).is_not(None),
                    )
                ).all()
            self._due = {case_id: due for case_id, due in rows if case_id and due}
        if not self._due:
            return None, []
        first = min(self._due.values())
        return first, sorted(case_id for case_id, due in self._due.items() if due == first)

    def _escalate_until(self, end: datetime) -> None:
        """Run the engine at every due time up to `end`, as a running engine would."""
        while True:
            due, case_ids = self._next_due()
            if due is None or due > end:
                return
            self.clock.set(max(due, self.clock.now()))
            result = self.engine.run_due(case_ids=case_ids)
            self._due = None
            if not result.cases:
                raise RuntimeError(f"the engine left a step due at {due.isoformat()} unpaged")
            if result.pages:
                self._deliver()

    def _changed(self, case: Case) -> None:
        """Note what the service left: the assignee and when the case next escalates."""
        assert case.id is not None
        if case.assignee_id is not None:
            self.assignees[case.ref] = self.handles[case.assignee_id]
        if self._due is not None:
            self._due.pop(case.id, None)
            if case.status != Status.RESOLVED.value and case.next_escalation_at is not None:
                self._due[case.id] = case.next_escalation_at

    def _deliver(self) -> None:
        """New pages reach their people: consoles show them, the webhook receiver takes
        them, as if everyone's console were open. Pages of the cases still ringing at `now`
        are left for the real consoles to show."""
        with self.db.read() as session:
            rows = session.exec(
                select(Page.id, Page.responder_id, Case.id, Case.ref)
                .join(Case, col(Case.id) == col(Page.case_id))
                .where(col(Page.id) > self.last_page_id)
            ).all()
        wanted: dict[int, list[int]] = {}
        webhooks = False
        for page_id, responder_id, case_id, ref in rows:
            assert page_id is not None
            assert case_id is not None
            self.last_page_id = max(self.last_page_id, page_id)
            if ref not in self.quiet:
                wanted.setdefault(responder_id, []).append(case_id)
                webhooks = webhooks or responder_id in self.webhook_ids
        outcome = DesktopOutcome(SENT, "handed to the desktop; delivery not confirmed")
        for responder_id, case_ids in sorted(wanted.items()):
            for alert in claim_my_pages(self.db, self.clock, responder_id, case_ids):
                record_desktop(self.db, self.clock, alert.desktop_delivery_ids, outcome)
        if webhooks:
            process_webhook_outbox(
                self.db, self.clock, transport=self.webhooks, rng=self.outbox_rng
            )

    # -- who acts -------------------------------------------------------------------------

    def _acknowledger(self, ref: str) -> str:
        """Someone the engine paged last for this case, a specialist if one was paged."""
        with self.db.read() as session:
            rows = session.exec(
                select(Responder.handle, Responder.role, Page.sent_at)
                .join(Page, col(Page.responder_id) == col(Responder.id))
                .join(Case, col(Case.id) == col(Page.case_id))
                .where(Case.ref == ref, col(Page.cycle) == col(Case.escalation_cycle))
                .order_by(col(Page.sent_at).desc(), col(Responder.handle))
            ).all()
        if not rows:
            return _supervisor_awake(self.clock.now())
        latest = [(handle, role) for handle, role, sent in rows if sent == rows[0][2]]
        specialists = [handle for handle, role in latest if role == "specialist"]
        return self.rng.choice(specialists or [handle for handle, _ in latest])

    def _worker(self, key: int) -> tuple[str, str]:
        """(who works on the case now, its ref): its assignee."""
        ref = self.refs[key]
        return self.assignees.get(ref) or _supervisor_awake(self.clock.now()), ref

    # -- the plan's steps -----------------------------------------------------------------

    def schedule(self, plan: CasePlan) -> None:
        start = plan.opened_at
        key = id(plan)
        self.at(start, partial(self._open, plan))
        if plan.duplicate_after is not None:
            self.at(start + plan.duplicate_after, partial(self._duplicate, plan))
        if plan.ack_after is not None:
            self.at(start + plan.ack_after, partial(self._ack, key))
        if plan.reveal_after is not None:
            self.at(start + plan.reveal_after, partial(self._reveal, key))
        for offset, stage in plan.stages:
            self.at(start + offset, partial(self._stage, key, stage))
        for offset, note in plan.notes:
            self.at(start + offset, partial(self._note, key, note))
        if plan.reassign is not None:
            when, ack = plan.reassign
            self.at(start + when, partial(self._reassign, key))
            self.at(start + when + ack, partial(self._ack_as_assignee, key))
        if plan.action_item is not None:
            offset, title, owner = plan.action_item
            due = start + offset + timedelta(days=7)
            self.at(start + offset, partial(self._action_item, key, title, owner, due))
        if plan.resolve_after is not None:
            if plan.category == Category.CSEA:
                # A desk files the CyberTipline report before it closes the case, well
                # inside the 24 hours the law gives.
                filed = min(plan.resolve_after - timedelta(minutes=1), timedelta(hours=20))
                self.at(start + filed, partial(self._file_tipline, key))
            self.at(start + plan.resolve_after, partial(self._resolve, key, plan.closing_note))

    def _open(self, plan: CasePlan) -> None:
        result = self.cases.open_case(
            plan.opener,
            title=plan.title,
            category=plan.category.value,
            severity=plan.severity,
            details=plan.details,
            policy=plan.policy,
            dedup_key=plan.dedup_key,
            source=plan.source,
        )
        self.refs[id(plan)] = result.ref
        if plan.rings_at_console:
            self.quiet.add(result.ref)
        if self._due is not None:
            self._due[result.case_id] = self.clock.now()  # a new case pages step 1 at once

    def _duplicate(self, plan: CasePlan) -> None:
        """The same event again from its source: the open case absorbs it."""
        self.cases.open_case(
            plan.opener,
            title=plan.title,
            category=plan.category.value,
            severity=plan.severity,
            details=plan.details,
            dedup_key=plan.dedup_key,
            source=plan.source,
        )

    def _ack(self, key: int) -> None:
        ref = self.refs[key]
        self._changed(self.cases.acknowledge(self._acknowledger(ref), ref))

    def _ack_as_assignee(self, key: int) -> None:
        actor, ref = self._worker(key)
        self._changed(self.cases.acknowledge(actor, ref))

    def _reveal(self, key: int) -> None:
        actor, ref = self._worker(key)
        self.cases.reveal(actor, ref, reason="triage under the CSEA protocol")

    def _stage(self, key: int, stage: str) -> None:
        actor, ref = self._worker(key)
        self.cases.set_stage(actor, ref, stage)

    def _note(self, key: int, note: str) -> None:
        actor, ref = self._worker(key)
        self.cases.add_note(actor, ref, note)

    def _reassign(self, key: int) -> None:
        """A supervisor hands the case to a specialist who is at work now."""
        assignee, ref = self._worker(key)
        now = self.clock.now()
        with self.db.read() as session:
            specialists = session.exec(
                select(Responder.handle, Responder.timezone)
                .where(Responder.role == "specialist", Responder.handle != assignee)
                .order_by(col(Responder.handle))
            ).all()
        awake = [h for h, zone in specialists if 8 <= _local_hour(now, ZoneInfo(zone)) < 20]
        target = self.rng.choice(awake or [h for h, _ in specialists])
        supervisor = _supervisor_awake(now)
        self.cases.add_note(supervisor, ref, f"Shift ending for {assignee}; handing to {target}.")
        self._changed(self.cases.reassign(supervisor, ref, target))
        self._deliver()

    def _action_item(self, key: int, title: str, owner: str, due: datetime) -> None:
        actor, ref = self._worker(key)
        self.cases.add_action_item(actor, ref, title, owner=owner, due_at=due)

    def _file_tipline(self, key: int) -> None:
        actor, ref = self._worker(key)
        number = int(ref.removeprefix("ESC-"))
        report_id = f"CT-{(number * 7919) % 10**8:08d}"
        self.casework.file_report(actor, ref, report_id=report_id, clock="tipline")

    def _resolve(self, key: int, note: str) -> None:
        actor, ref = self._worker(key)
        self._changed(self.cases.resolve(actor, ref, note=note or None))

    def close(self) -> None:
        self.webhooks.close()


# --- the entry point -------------------------------------------------------------------------


def demo_team_text() -> str:
    """The demo team file, shipped next to this module."""
    return resources.files(__package__ or "app").joinpath(DEMO_TEAM).read_text(encoding="utf-8")


def wipe(db: Database) -> None:
    """Delete every row of every table (children first); the schema and its stamp stay."""
    tables = every_table().sorted_tables
    with db.write() as session:
        if db.is_postgres:
            quote = db.engine.dialect.identifier_preparer.format_table
            names = ", ".join(quote(table) for table in tables)
            session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                session.execute(table.delete())


def _built_by_demo(db: Database) -> bool:
    with db.read() as session:
        return session.get(Setting, DEMO_MARKER) is not None


def _refuse_real_desk(db: Database) -> None:
    with db.read() as session:
        cases = session.exec(select(func.count()).select_from(Case)).one()
        people = session.exec(select(func.count()).select_from(Responder)).one()
    if cases or people:
        raise NothingToDo(
            f"this database already holds a desk ({people} responders, {cases} cases) that the "
            "demo did not build; the demo fills only an empty or a demo database: use "
            "`vigil demo --reset` to wipe it first, or --db with a new database"
        )


def _live_override(spec: TeamSpec, now: datetime) -> tuple[TeamSpec, datetime]:
    """The team plus an override putting LIVE_COVER on primary around `now`."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    cover = TeamOverride(
        schedule="primary",
        who=LIVE_COVER,
        start=start,
        end=start + timedelta(hours=8),
        reason="Covering primary while the rostered specialist is at training",
    )
    return replace(spec, overrides=(*spec.overrides, cover)), start - timedelta(minutes=20)


def build_demo(
    db: Database, *, now: datetime, reset: bool = False, seed: int = DEFAULT_SEED
) -> str:
    """Fill `db` with the demo desk as it stands at `now`; return a one-paragraph summary.

    A database the demo built before is rebuilt; one that holds a real desk is refused
    (`NothingToDo`) unless `reset` wipes it first.
    """
    if now.tzinfo is None:
        raise ValueError("build_demo needs an aware `now`")
    now = now.astimezone(UTC).replace(microsecond=0)
    if reset or _built_by_demo(db):
        wipe(db)
    _refuse_real_desk(db)
    rng = random.Random(seed)
    spec = parse_team(demo_team_text(), DEMO_TEAM)
    clock = FakeClock(now - HISTORY - timedelta(days=1))
    apply_team(db, spec, actor=RELAY, now=clock.now())
    partners = CaseworkService(db, clock)
    for partner in PARTNERS:
        partners.add_partner(SUPERVISORS["Australia/Sydney"], **partner)

    team = [(r.handle, r.timezone) for r in spec.responders if r.role == "specialist"]
    plans = plan_history(now, rng, team) + plan_live(now, rng)
    desk = _Desk(db, clock, rng)
    try:
        covered, placed_at = _live_override(spec, now)
        desk.at(
            placed_at,
            lambda: apply_team(db, covered, actor=SUPERVISORS["Australia/Sydney"], now=placed_at),
        )
        for plan in plans:
            desk.schedule(plan)
        desk.run_until(now)
    finally:
        desk.close()
    with db.write() as session:
        session.add(Setting(key=DEMO_MARKER, value=now.isoformat()))
    return summarize(db)


def summarize(db: Database) -> str:
    """One paragraph: what the demo desk holds and where to look first."""
    with db.read() as session:
        people = session.exec(select(Responder.timezone)).all()
        statuses = Counter(session.exec(select(Case.status)).all())
        pages = session.exec(select(func.count()).select_from(Page)).one()
        counts = {
            model.__name__: session.exec(select(func.count()).select_from(model)).one()
            for model in (Rotation, Schedule, Policy, Holiday)
        }
        chain = audit.verify(session)
        first = session.exec(select(func.min(Case.created_at))).one()
    zones = Counter(zone.split("/")[-1].replace("_", " ") for zone in people)
    where = ", ".join(f"{count} in {zone}" for zone, count in sorted(zones.items()))
    total = sum(statuses.values())
    verdict = "the chain verifies" if chain.ok else f"the chain is BROKEN: {chain.reason}"
    since = f" since {first:%Y-%m-%d}" if first else ""
    return (
        f"Demo desk ready in {db.display_name}: {len(people)} responders ({where}), "
        f"{counts['Rotation']} rotations, {counts['Schedule']} schedules, "
        f"{counts['Policy']} escalation policies and {counts['Holiday']} holidays; "
        f"{total} cases{since} ({statuses[Status.RESOLVED.value]} resolved, "
        f"{statuses[Status.ACKNOWLEDGED.value]} acknowledged, "
        f"{statuses[Status.TRIGGERED.value]} triggered), {pages} pages and {chain.checked} "
        f"audit records ({verdict}). {LIVE_COVER} is covering primary and a sev1 is paging "
        f"her now: `vigil --as {LIVE_COVER}`."
    )

"""Trust & Safety casework: request verification, disclosure decisions, legal clocks,
containment checklists, partners and action items.

Every change goes through `CaseworkService`, which reuses the case service's write
transaction: lock the audit chain, load the actor, check the role, change, add a timeline
event, feed the change log, append the audit record, all or nothing.

Legal clocks are pure: `legal_clocks(facts, config, now)` computes them from stored facts
(when the case was received, when a report was filed, how often a hold was extended), so
nothing about a deadline is ever stored that could go stale.

The desk's settings (`[clocks]`, `[disclosure_basis]`, `[containment]` in the team file)
are read by `parse_casework_config`, each problem named by its key path; a category or
basis the desk names replaces the built-in one of that name, the rest keep the defaults.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlmodel import Session, col, or_, select

from app.cases import CaseService, Tx, add_timeline, check_title, clean_text
from app.errors import BadInput, NotAllowed, NotFound, NothingToDo, VigilError
from data import audit
from data.casework import (
    INTERNAL_PARTNER_KINDS,
    ActionStatus,
    CasePartner,
    CaseworkSettings,
    ClockEvent,
    ClockEventKind,
    ContainmentRecord,
    DataCategory,
    Disclosure,
    DisclosureStatus,
    OwnerKind,
    Partner,
    PartnerKind,
    VerificationRecord,
    VerificationStepName,
)
from data.domain import Category, Status, format_duration, parse_duration
from data.models import ActionItem, Case, Responder
from data.queries import OWES_REPORT_RANK, handles
from widgets.timefmt import format_age
from widgets.views import (
    CLOCK_URGENCY,
    HIDDEN,
    ActionView,
    CaseworkView,
    ClockKind,
    ClockState,
    ClockView,
    ContainmentView,
    DisclosureView,
    PartnerView,
    VerificationStepView,
    VerificationView,
    clock_state,
    most_urgent,
)

MAX_FACT = 2_000
MAX_REASON = 2_000
MAX_REFERENCE = 200
MAX_ACCOUNTS = 1_000_000
IN_CHUNK = 900  # ids per IN (...) list: well under SQLite's bound-parameter limit

# --- settings ---------------------------------------------------------------

CASEWORK_KEYS = ("clocks", "disclosure_basis", "containment")
CLOCK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
BASIS_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
CLOCK_NAME_RULE = "a name of lowercase letters, digits and '_' (32 at most)"
BASIS_KEY_RULE = "a key of lowercase letters, digits, '.', '_' or '-' (32 at most)"
_YEARS = re.compile(r"^(\d+)y$")

_EVIDENCE = {
    "name": "evidence_preserved",
    "label": "Evidence preserved (hash reference)",
    "needs_reference": True,
}
DEFAULT_SETTINGS: dict[str, Any] = {
    "clocks": {
        Category.CSEA.value: {
            "tipline": {
                "kind": "deadline",
                "label": "CyberTipline report to NCMEC (18 U.S.C. 2258A)",
                "due": "24h",
                "remind": "4h",
            },
            "preserve_reported": {
                "kind": "hold",
                "label": "Preserve reported content (REPORT Act: 1 year from the report)",
                "starts": "filed:tipline",
                "due": "1y",
                "remind": "30d",
            },
        },
        Category.PRESERVATION.value: {
            "preservation": {
                "kind": "hold",
                "label": "Preservation request (18 U.S.C. 2703(f))",
                "due": "90d",
                "remind": "14d",
                "extension": "90d",
                "max_extensions": 1,
            },
        },
    },
    "disclosure_basis": {
        "us-emergency": {
            "label": "18 U.S.C. 2702(b)(8) and (c)(4): emergency",
            "emergency": True,
        },
        "us-legal-process": {"label": "18 U.S.C. 2703: subpoena, court order or warrant"},
        "us-consent": {"label": "18 U.S.C. 2702(b)(3) and (c)(2): consent"},
    },
    "containment": {
        "default": ["content_removed", "account_actioned", _EVIDENCE, "partner_notified"],
        Category.EDR.value: [_EVIDENCE, "partner_notified"],
        Category.LE_REQUEST.value: [_EVIDENCE, "partner_notified"],
        Category.PRESERVATION.value: [_EVIDENCE, "partner_notified"],
    },
}


@dataclass(frozen=True, slots=True)
class Span:
    """A clock's length: a fixed duration, or whole calendar years (the law's "one year")."""

    delta: timedelta = timedelta(0)
    years: int = 0

    def after(self, start: datetime) -> datetime:
        if not self.years:
            return start + self.delta
        try:
            return start.replace(year=start.year + self.years)
        except ValueError:  # 29 February: the period ends on 1 March, never a day early
            return start.replace(year=start.year + self.years, month=3, day=1)

    @property
    def shortest(self) -> timedelta:
        return self.delta if not self.years else timedelta(days=365 * self.years)

    def __str__(self) -> str:
        return f"{self.years}y" if self.years else format_duration(self.delta)


@dataclass(frozen=True, slots=True)
class ClockSpec:
    name: str
    label: str
    kind: str
    due: Span
    remind: timedelta | None = None  # warn this long before `due`
    starts: str = "received"  # or "filed:NAME": when deadline clock NAME's report is filed
    extension: Span | None = None
    max_extensions: int = 0

    @property
    def started_by(self) -> str | None:
        """The deadline clock whose filed report starts this one, if any."""
        return self.starts.removeprefix("filed:") if self.starts.startswith("filed:") else None


@dataclass(frozen=True, slots=True)
class BasisSpec:
    key: str
    label: str
    emergency: bool = False


@dataclass(frozen=True, slots=True)
class ContainmentSpec:
    name: str
    label: str
    needs_reference: bool = False


@dataclass(frozen=True)
class CaseworkConfig:
    """The desk's casework settings as read from a document (see `effective_config`)."""

    clocks: Mapping[str, tuple[ClockSpec, ...]] = field(default_factory=dict)
    bases: Mapping[str, BasisSpec] = field(default_factory=dict)
    containment: Mapping[str, tuple[ContainmentSpec, ...]] = field(default_factory=dict)

    def clocks_for(self, category: str) -> tuple[ClockSpec, ...]:
        return self.clocks.get(category, ())

    def containment_for(self, category: str) -> tuple[ContainmentSpec, ...]:
        if category in self.containment:
            return self.containment[category]
        return self.containment.get("default", ())


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    path: str  # key path such as clocks.csea.tipline.due
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class CaseworkConfigError(BadInput):
    """Casework settings that cannot be used; lists every problem, each by its key path."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        VigilError.__init__(self, "\n".join(str(p) for p in self.problems))
        self.field = self.problems[0].path
        self.message = self.problems[0].message


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_span(text: object) -> Span:
    """`90d`, `24h`, ... or whole calendar years `1y`; ValueError says what was expected."""
    if isinstance(text, str):
        years = _YEARS.match(text.strip())
        if years and int(years.group(1)) > 0:
            return Span(years=int(years.group(1)))
        if not years:
            return Span(delta=parse_duration(text))
    raise ValueError(f"expected a duration such as 24h, 90d or 1y, got {text!r}")


class _Reader:
    """Reads the settings tables, recording every problem with its key path."""

    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))

    def table(self, value: object, path: str) -> Mapping[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.fail(path, f"expected a table, got {_describe(value)}")
        return None

    def keys(
        self, table: Mapping[str, Any], path: str, required: Sequence[str], optional: Sequence[str]
    ) -> None:
        allowed = (*required, *optional)
        for key in table:
            if key not in allowed:
                self.fail(
                    f"{path}.{key}",
                    f"unknown key {key!r}{_suggest(str(key), allowed)} "
                    f"(expected {', '.join(allowed)})",
                )
        for key in required:
            if key not in table:
                self.fail(f"{path}.{key}", "required key is missing")

    def text(self, table: Mapping[str, Any], key: str, path: str, default: str) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{path}.{key}", f"expected a non-empty string, got {_describe(value)}")
            return default
        return value.strip()

    def flag(self, table: Mapping[str, Any], key: str, path: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            self.fail(f"{path}.{key}", f"expected true or false, got {_describe(value)}")
            return False
        return value

    def span(self, table: Mapping[str, Any], key: str, path: str) -> Span | None:
        if key not in table:
            return None
        try:
            return parse_span(table[key])
        except ValueError as exc:
            self.fail(f"{path}.{key}", str(exc))
            return None

    def category(self, key: str, path: str, extra: Sequence[str] = ()) -> bool:
        allowed = [*extra, *(c.value for c in Category)]
        if key in allowed:
            return True
        self.fail(
            f"{path}.{key}",
            f"unknown category {key!r}{_suggest(key, allowed)} (expected {', '.join(allowed)})",
        )
        return False

    # -- clocks ---------------------------------------------------------------

    def clocks(self, value: object, path: str) -> dict[str, tuple[ClockSpec, ...]]:
        out: dict[str, tuple[ClockSpec, ...]] = {}
        table = self.table(value, path)
        for category, clocks in (table or {}).items():
            if not self.category(str(category), path):
                continue
            where = f"{path}.{category}"
            entries = self.table(clocks, where) or {}
            specs = [
                self.clock(str(name), body, f"{where}.{name}") for name, body in entries.items()
            ]
            found = tuple(s for s in specs if s is not None)
            self.check_starts(found, where)
            out[str(category)] = found
        return out

    def clock(self, name: str, value: object, path: str) -> ClockSpec | None:
        if not CLOCK_NAME.match(name):
            self.fail(path, f"expected {CLOCK_NAME_RULE}, got {name!r}")
        table = self.table(value, path)
        if table is None:
            return None
        self.keys(
            table,
            path,
            ("kind", "due"),
            ("label", "remind", "starts", "extension", "max_extensions"),
        )
        kind = table.get("kind")
        if kind not in (ClockKind.DEADLINE, ClockKind.HOLD):
            if "kind" in table:
                self.fail(f"{path}.kind", f"expected deadline or hold, got {_describe(kind)}")
            kind = None  # keep reading: every problem of the entry is reported at once
        label = self.text(table, "label", path, name.replace("_", " ").capitalize())
        due = self.span(table, "due", path)
        remind = self.remind(table, path, due)
        starts = self.text(table, "starts", path, "received")
        if starts != "received" and not starts.startswith("filed:"):
            self.fail(f"{path}.starts", f"expected received or filed:CLOCK, got {starts!r}")
            starts = "received"
        if kind == ClockKind.DEADLINE and starts != "received":
            self.fail(f"{path}.starts", "a deadline starts when the case is received")
        extension = self.span(table, "extension", path)
        if kind == ClockKind.DEADLINE and extension is not None:
            self.fail(f"{path}.extension", "only a hold can be extended")
        max_extensions = self.max_extensions(table, path, extension)
        if kind is None or due is None:
            return None
        return ClockSpec(name, label, kind, due, remind, starts, extension, max_extensions)

    def remind(self, table: Mapping[str, Any], path: str, due: Span | None) -> timedelta | None:
        span = self.span(table, "remind", path)
        if span is None:
            return None
        if span.years:
            self.fail(f"{path}.remind", "expected a duration in days or less, not years")
            return None
        if due is not None and span.delta >= due.shortest:
            self.fail(f"{path}.remind", f"expected less than due ({due}), got {span}")
        return span.delta

    def max_extensions(self, table: Mapping[str, Any], path: str, extension: Span | None) -> int:
        """How often a hold may be extended: once unless the desk says otherwise."""
        if "max_extensions" not in table:
            return 1 if extension else 0
        value = table["max_extensions"]
        if extension is None:
            self.fail(f"{path}.max_extensions", "needs an extension length (extension = ...)")
        elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10:
            self.fail(f"{path}.max_extensions", f"expected 1 to 10, got {_describe(value)}")
        else:
            return value
        return 0

    def check_starts(self, specs: Sequence[ClockSpec], path: str) -> None:
        deadlines = [s.name for s in specs if s.kind == ClockKind.DEADLINE]
        for spec in specs:
            source = spec.started_by
            if source is not None and source not in deadlines:
                self.fail(
                    f"{path}.{spec.name}.starts",
                    f"expected filed: and a deadline clock of this category "
                    f"({', '.join(deadlines) or 'there is none'}), got {spec.starts!r}",
                )

    # -- bases and containment -------------------------------------------------

    def bases(self, value: object, path: str) -> dict[str, BasisSpec]:
        out: dict[str, BasisSpec] = {}
        for key, body in (self.table(value, path) or {}).items():
            where = f"{path}.{key}"
            if not BASIS_KEY.match(str(key)):
                self.fail(where, f"expected {BASIS_KEY_RULE}, got {key!r}")
            table = self.table(body, where)
            if table is None:
                continue
            self.keys(table, where, ("label",), ("emergency",))
            label = self.text(table, "label", where, str(key))
            out[str(key)] = BasisSpec(str(key), label, self.flag(table, "emergency", where))
        return out

    def containment(self, value: object, path: str) -> dict[str, tuple[ContainmentSpec, ...]]:
        out: dict[str, tuple[ContainmentSpec, ...]] = {}
        for category, steps in (self.table(value, path) or {}).items():
            if not self.category(str(category), path, extra=("default",)):
                continue
            where = f"{path}.{category}"
            if not isinstance(steps, list):
                self.fail(where, f"expected an array of steps, got {_describe(steps)}")
                continue
            specs: list[ContainmentSpec] = []
            for index, step in enumerate(steps):
                spec = self.containment_step(step, f"{where}[{index}]")
                if spec is None:
                    continue
                if any(s.name == spec.name for s in specs):
                    self.fail(f"{where}[{index}]", f"step {spec.name!r} is listed twice")
                    continue
                specs.append(spec)
            out[str(category)] = tuple(specs)
        return out

    def containment_step(self, value: object, path: str) -> ContainmentSpec | None:
        if isinstance(value, str):
            table: Mapping[str, Any] = {"name": value}
        elif isinstance(value, dict):
            table = value
            self.keys(table, path, ("name",), ("label", "needs_reference"))
        else:
            self.fail(path, f"expected a step name or a table, got {_describe(value)}")
            return None
        name = table.get("name")
        if not isinstance(name, str) or not CLOCK_NAME.match(name):
            where = path if isinstance(value, str) else f"{path}.name"
            self.fail(where, f"expected {CLOCK_NAME_RULE}, got {_describe(name)}")
            return None
        label = self.text(table, "label", path, name.replace("_", " ").capitalize())
        return ContainmentSpec(name, label, self.flag(table, "needs_reference", path))


def _raise_problems(reader: _Reader) -> None:
    if reader.problems:
        raise CaseworkConfigError(reader.problems)


def parse_clock_config(table: Mapping[str, Any]) -> dict[str, tuple[ClockSpec, ...]]:
    """The `[clocks]` table of a team file: category -> its legal clocks, in file order."""
    reader = _Reader()
    clocks = reader.clocks(table, "clocks")
    _raise_problems(reader)
    return clocks


def parse_casework_config(document: Mapping[str, Any]) -> CaseworkConfig:
    """Read `clocks`, `disclosure_basis` and `containment` of a (team file) document; other
    keys are left to their owners. Raises `CaseworkConfigError` listing every problem."""
    reader = _Reader()
    config = CaseworkConfig(
        clocks=reader.clocks(document.get("clocks", {}), "clocks"),
        bases=reader.bases(document.get("disclosure_basis", {}), "disclosure_basis"),
        containment=reader.containment(document.get("containment", {}), "containment"),
    )
    _raise_problems(reader)
    return config


def settings_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """Only the casework tables of a document (what is stored and exported)."""
    return {key: document[key] for key in CASEWORK_KEYS if key in document}


def merged_settings(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The built-in settings with the desk's own laid over them, category by category."""
    merged: dict[str, Any] = {}
    for key in CASEWORK_KEYS:
        own = stored.get(key, {})
        merged[key] = {**DEFAULT_SETTINGS[key], **(own if isinstance(own, dict) else {})}
    return merged


def effective_config(stored: Mapping[str, Any]) -> CaseworkConfig:
    return parse_casework_config(merged_settings(stored))


@lru_cache(maxsize=8)
def _config_of(document: str) -> CaseworkConfig:
    """The configuration a stored document (as canonical JSON) means: every queue window
    asks for it, and it changes only when a team file is applied."""
    return effective_config(json.loads(document))


DEFAULT_CONFIG = effective_config({})


def stored_settings(session: Session) -> dict[str, Any]:
    row = session.get(CaseworkSettings, 1)
    return dict(row.document) if row is not None else {}


def load_config(session: Session) -> CaseworkConfig:
    return _config_of(json.dumps(stored_settings(session), sort_keys=True))


def store_settings(session: Session, document: Mapping[str, Any], actor: str, now: datetime) -> str:
    """Validate and store the casework tables of a team document (the caller audits);
    returns the digest of what was stored."""
    settings = settings_document(document)
    effective_config(settings)  # refuse anything that would not load
    row = session.get(CaseworkSettings, 1)
    if row is None:
        row = CaseworkSettings(id=1, document=settings, updated_at=now, updated_by=actor)
    else:
        row.document, row.updated_at, row.updated_by = settings, now, actor
    session.add(row)
    return digest(settings)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def settings_toml(document: Mapping[str, Any]) -> str:
    """The casework tables as team-file TOML (the shapes `parse_casework_config` reads)."""
    lines: list[str] = []
    for category, clocks in document.get("clocks", {}).items():
        if not clocks:
            lines += [f"[clocks.{_toml_key(category)}]", ""]
        for name, body in clocks.items():
            lines.append(f"[clocks.{_toml_key(category)}.{_toml_key(name)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()]
            lines.append("")
    for key, body in document.get("disclosure_basis", {}).items():
        lines.append(f"[disclosure_basis.{_toml_key(key)}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()]
        lines.append("")
    containment = document.get("containment", {})
    if containment:
        lines.append("[containment]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in containment.items()]
        lines.append("")
    return "\n".join(lines)


def digest(value: Any) -> str:
    """A short fingerprint of recorded facts, so the audit chain proves them unchanged
    without repeating them."""
    body = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


# --- legal clocks (pure) ----------------------------------------------------


@dataclass(frozen=True)
class ClockFacts:
    """What the clocks of one case are computed from."""

    category: str
    received_at: datetime
    filed: Mapping[str, tuple[datetime, str]] = field(default_factory=dict)  # at, report id
    extensions: Mapping[str, int] = field(default_factory=dict)
    waived: Mapping[str, datetime] = field(default_factory=dict)


def _clock(spec: ClockSpec, facts: ClockFacts, now: datetime) -> ClockView:
    source = spec.started_by
    if source is None:
        started: datetime | None = facts.received_at
    else:
        started = facts.filed[source][0] if source in facts.filed else None
    if started is None:
        return ClockView(spec.name, spec.label, spec.kind, ClockState.PENDING, None, None, None)
    granted = min(facts.extensions.get(spec.name, 0), spec.max_extensions)
    due = spec.due.after(started)
    for _ in range(granted):
        assert spec.extension is not None
        due = spec.extension.after(due)
    reminder = due - spec.remind if spec.remind else None
    base = ClockView(
        spec.name,
        spec.label,
        spec.kind,
        ClockState.OK,
        due,
        reminder,
        started,
        extensions=granted,
        extensions_left=spec.max_extensions - granted,
    )
    waived_at = facts.waived.get(spec.name)
    filed = facts.filed.get(spec.name) if spec.kind == ClockKind.DEADLINE else None
    if waived_at is not None:
        outcome = "waived" if spec.kind == ClockKind.DEADLINE else "released"
        return _done(base, waived_at, outcome)
    if filed is not None:
        view = _done(base, filed[0], "filed late" if filed[0] > due else "filed")
        return replace(view, reference=filed[1])
    state = clock_state(spec.kind, due, reminder, now)
    if state == ClockState.DONE:
        return _done(base, due, "expired")
    return replace(base, state=state)


def _done(view: ClockView, at: datetime, outcome: str) -> ClockView:
    return replace(view, state=ClockState.DONE, done_at=at, outcome=outcome, extensions_left=0)


def legal_clocks(facts: ClockFacts, config: CaseworkConfig, now: datetime) -> list[ClockView]:
    """The legal clocks of one case at `now`, in the order the desk's settings list them."""
    return [_clock(spec, facts, now) for spec in config.clocks_for(facts.category)]


# --- verification rules -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepRule:
    label: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


VERIFICATION_STEPS: dict[str, StepRule] = {
    VerificationStepName.IDENTITY: StepRule(
        "Requester identity confirmed through an independent channel",
        # whom we contacted, on which number or address, found in which directory
        required=("contacted", "via", "directory"),
        optional=("caller",),
    ),
    VerificationStepName.AGENCY: StepRule(
        "Agency and officer recorded", required=("agency", "officer"), optional=("badge",)
    ),
    VerificationStepName.EMERGENCY: StepRule(
        "Emergency stated: danger of death or serious physical injury",
        required=("danger", "statement"),
        choices={"danger": ("death", "serious_injury", "both")},
    ),
    VerificationStepName.GOOD_FAITH: StepRule(
        "Good-faith determination by the specialist", required=("determination",)
    ),
}
VERIFICATION_FIELDS = tuple(
    dict.fromkeys(f for rule in VERIFICATION_STEPS.values() for f in rule.required + rule.optional)
)
# Free text that may describe the person at risk: hidden on a sensitive case until revealed.
FREE_TEXT_FACTS = frozenset({"statement", "determination"})
VERIFIED_CATEGORIES = frozenset({Category.EDR.value})


def verification_missing(recorded: Iterable[str]) -> list[str]:
    done = set(recorded)
    return [step for step in VERIFICATION_STEPS if step not in done]


def check_verification_fields(step: str, fields: Mapping[str, str | None]) -> dict[str, str]:
    """The facts of one step, cleaned; BadInput names the first field that is wrong."""
    try:
        name = VerificationStepName(step.strip().lower())
    except ValueError:
        allowed = ", ".join(VERIFICATION_STEPS)
        raise BadInput("step", f"expected one of {allowed}, got {step!r}") from None
    rule = VERIFICATION_STEPS[name]
    given = {k: v for k, v in fields.items() if v is not None}
    for key in given:
        if key not in rule.required + rule.optional:
            expected = ", ".join(rule.required + rule.optional)
            raise BadInput(key, f"not a fact of the {name.value} step (it takes {expected})")
    facts: dict[str, str] = {}
    for key in rule.required + rule.optional:
        value = clean_text(key, given.get(key) or "", MAX_FACT, required=key in rule.required)
        if key in rule.choices and value not in rule.choices[key]:
            raise BadInput(key, f"expected one of {', '.join(rule.choices[key])}, got {value!r}")
        if value:
            facts[key] = value
    return facts


def verification_required(category: str, basis: BasisSpec | None = None) -> bool:
    """An emergency data request, or any disclosure on an emergency basis, is verified first."""
    return category in VERIFIED_CATEGORIES or (basis is not None and basis.emergency)


def parse_data_categories(value: str | Sequence[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    allowed = [c.value for c in DataCategory]
    out: list[str] = []
    for raw in items:
        item = raw.strip().lower()
        if item not in allowed:
            raise BadInput(
                "data", f"expected one or more of {', '.join(allowed)}, got {raw.strip()!r}"
            )
        if item not in out:
            out.append(item)
    if not out:
        raise BadInput("data", f"expected one or more of {', '.join(allowed)}, got nothing")
    return out


# --- view objects: the casework pane's live in widgets.views; these are the queue's ---


@dataclass(frozen=True, slots=True)
class CaseworkFlags:
    """What a queue row shows of a case's casework: its most urgent legal clock, its overdue
    action items, and what waits on someone (verification, a supervisor's approval)."""

    clock: ClockView | None
    overdue_actions: int
    open_actions: int
    next_action_due_at: datetime | None
    verification_pending: bool
    disclosures_awaiting_approval: int = 0


@dataclass(frozen=True, slots=True)
class CaseClockView:
    case_id: int
    ref: str
    status: str
    clock: ClockView
    title: str = ""


# --- reading ----------------------------------------------------------------


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start : start + IN_CHUNK]


def clock_facts(session: Session, cases: Sequence[Case]) -> dict[int, ClockFacts]:
    """The clock facts of several cases in one query per chunk of ids."""
    events: dict[int, list[ClockEvent]] = defaultdict(list)
    for chunk in _chunks([c.id for c in cases if c.id is not None]):
        statement = (
            select(ClockEvent)
            .where(col(ClockEvent.case_id).in_(chunk))
            .order_by(col(ClockEvent.at), col(ClockEvent.id))
        )
        for event in session.exec(statement):
            events[event.case_id].append(event)
    out: dict[int, ClockFacts] = {}
    for case in cases:
        assert case.id is not None
        filed: dict[str, tuple[datetime, str]] = {}
        extensions: dict[str, int] = defaultdict(int)
        waived: dict[str, datetime] = {}
        for event in events.get(case.id, []):
            if event.kind == ClockEventKind.FILED:
                filed.setdefault(event.clock, (event.at, event.reference or ""))
            elif event.kind == ClockEventKind.EXTENDED:
                extensions[event.clock] += 1
            elif event.kind == ClockEventKind.WAIVED:
                waived.setdefault(event.clock, event.at)
        out[case.id] = ClockFacts(case.category, case.created_at, filed, dict(extensions), waived)
    return out


def owed_reports(
    session: Session,
    cases: Sequence[Case],
    now: datetime,
    *,
    config: CaseworkConfig | None = None,
) -> dict[int, list[ClockView]]:
    """The deadline clocks of each case that still ask for a report (running or breached:
    neither filed nor waived), by case id; cases that owe nothing are left out.

    A case that owes a report keeps it owed after it is resolved: resolving asks first,
    and the resolved case stays in the open queue until the report is filed."""
    config = config or load_config(session)
    wanted = [
        c
        for c in cases
        if any(spec.kind == ClockKind.DEADLINE for spec in config.clocks_for(c.category))
    ]
    if not wanted:
        return {}
    facts = clock_facts(session, wanted)
    out: dict[int, list[ClockView]] = {}
    for case in wanted:
        assert case.id is not None
        owed = [
            clock
            for clock in legal_clocks(facts[case.id], config, now)
            if clock.kind == ClockKind.DEADLINE and clock.running
        ]
        if owed:
            out[case.id] = owed
    return out


def _longest(span: Span) -> timedelta:
    return timedelta(days=366 * span.years) if span.years else span.delta


def clocks_due_by(
    session: Session, now: datetime, end: datetime, *, config: CaseworkConfig | None = None
) -> list[CaseClockView]:
    """Every legal clock running at `now` that comes due before `end`: reports still owed
    (breached ones too, resolved cases included) and holds that end by then. Most urgent
    first, then by due time.

    Only cases whose clocks can still run are read: open ones, resolved ones that owe a
    report, and those whose clock started within the longest clock's reach."""
    config = config or load_config(session)
    specs = [spec for specs in config.clocks.values() for spec in specs]
    if not specs:
        return []
    reach = max(
        _longest(s.due) + (_longest(s.extension) * s.max_extensions if s.extension else timedelta())
        for s in specs
    )
    since = now - reach
    filed_lately = select(ClockEvent.case_id).where(
        ClockEvent.kind == ClockEventKind.FILED.value, col(ClockEvent.at) >= since
    )
    statement = (
        select(Case)
        .where(
            col(Case.category).in_(sorted(config.clocks)),
            or_(
                col(Case.status) != Status.RESOLVED.value,
                col(Case.queue_rank) == OWES_REPORT_RANK,
                col(Case.created_at) >= since,
                col(Case.id).in_(filed_lately),
            ),
        )
        .order_by(col(Case.id))
    )
    out: list[CaseClockView] = []
    batch: list[Case] = []
    for case in session.exec(statement).yield_per(500):
        batch.append(case)
        if len(batch) == 500:
            out += _due_by(session, batch, config, now, end)
            batch = []
    out += _due_by(session, batch, config, now, end)
    return sorted(
        out, key=lambda v: (CLOCK_URGENCY[ClockState(v.clock.state)], v.clock.due_at, v.case_id)
    )


def _due_by(
    session: Session, cases: Sequence[Case], config: CaseworkConfig, now: datetime, end: datetime
) -> list[CaseClockView]:
    facts = clock_facts(session, cases)
    out = []
    for case in cases:
        assert case.id is not None
        for clock in legal_clocks(facts[case.id], config, now):
            if clock.running and clock.due_at is not None and clock.due_at < end:
                out.append(CaseClockView(case.id, case.ref, case.status, clock, case.title))
    return out


def owed_report_text(clock: ClockView, now: datetime) -> str:
    """One line naming an owed report and its deadline: `CyberTipline report to NCMEC (18
    U.S.C. 2258A), due in 3h` or `..., breached 2h ago`."""
    assert clock.due_at is not None
    left = clock.due_at - now
    if left < timedelta(0):
        return f"{clock.label}, breached {format_age(-left)} ago"
    return f"{clock.label}, due in {format_age(left)}"


def _case_by_id(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"no case with id {case_id}")
    return case


def _partner_view(partner: Partner) -> PartnerView:
    return PartnerView(
        partner.name,
        partner.kind,
        partner.agency,
        partner.contact,
        partner.verified_channel,
        partner.active,
    )


def _action_view(item: ActionItem, ref: str, now: datetime, names: dict[int, str]) -> ActionView:
    assert item.id is not None
    overdue = item.status == ActionStatus.OPEN and item.due_at is not None and item.due_at <= now
    return ActionView(
        id=item.id,
        case_id=item.case_id,
        ref=ref,
        title=item.title,
        owner=item.owner,
        owner_kind=item.owner_kind,
        due_at=item.due_at,
        status=item.status,
        overdue=overdue,
        created_at=item.created_at,
        completed_at=item.completed_at,
        completed_by=names.get(item.completed_by_id) if item.completed_by_id else None,
    )


def _verification_view(
    records: Sequence[VerificationRecord],
    names: dict[int, str],
    shown: bool,
    required: bool,
) -> VerificationView:
    by_step = {r.step: r for r in records}
    steps = []
    for step, rule in VERIFICATION_STEPS.items():
        record = by_step.get(step)
        if record is None:
            steps.append(VerificationStepView(step, rule.label, False))
            continue
        facts = tuple(
            (key, value if shown or key not in FREE_TEXT_FACTS else HIDDEN)
            for key in rule.required + rule.optional
            if (value := str(record.facts.get(key, "")))
        )
        steps.append(
            VerificationStepView(
                step,
                rule.label,
                True,
                facts,
                names.get(record.recorded_by_id, "?"),
                record.recorded_at,
            )
        )
    missing = tuple(verification_missing(by_step))
    return VerificationView(required, not missing, missing, tuple(steps))


def _disclosure_view(
    row: Disclosure, partners: dict[int, Partner], names: dict[int, str]
) -> DisclosureView:
    partner = partners.get(row.partner_id)
    return DisclosureView(
        number=row.number,
        status=row.status,
        data=tuple(row.data),
        accounts=row.accounts,
        to=partner.name if partner else "?",
        agency=row.agency,
        basis=row.basis,
        basis_label=row.basis_label,
        emergency=row.emergency,
        requested_by=names.get(row.requested_by_id, "?"),
        requested_at=row.requested_at,
        decided_by=names.get(row.decided_by_id) if row.decided_by_id else None,
        decided_at=row.decided_at,
        override_reason=row.override_reason,
        decline_reason=row.decline_reason,
    )


def _with_deciders(session: Session, case_id: int, clocks: list[ClockView]) -> list[ClockView]:
    """Name who filed each filed report and who waived each waived clock."""
    deciders: dict[tuple[str, str], int] = {}
    for name, kind, by_id in session.exec(
        select(ClockEvent.clock, ClockEvent.kind, ClockEvent.by_id)
        .where(
            ClockEvent.case_id == case_id,
            col(ClockEvent.kind).in_([ClockEventKind.FILED.value, ClockEventKind.WAIVED.value]),
        )
        .order_by(col(ClockEvent.at), col(ClockEvent.id))
    ):
        deciders.setdefault((name, kind), by_id)  # the first counts, as in clock_facts
    names = handles(session, list(deciders.values()))

    def decider(view: ClockView) -> str | None:
        if view.outcome in ("waived", "released"):
            event = ClockEventKind.WAIVED
        elif view.reference is not None:
            event = ClockEventKind.FILED
        else:
            return None
        found = deciders.get((view.name, event.value))
        return names.get(found) if found is not None else None

    return [replace(view, done_by=decider(view)) for view in clocks]


def casework_view(
    session: Session,
    case_id: int,
    now: datetime,
    *,
    config: CaseworkConfig | None = None,
    revealed: bool = False,
) -> CaseworkView:
    """The casework of one case. On a sensitive case, free text that may describe the person
    at risk stays hidden unless the caller has revealed the case (an audited act)."""
    case = _case_by_id(session, case_id)
    config = config or load_config(session)
    shown = revealed or not case.sensitive
    records = session.exec(
        select(VerificationRecord).where(VerificationRecord.case_id == case_id)
    ).all()
    disclosures = session.exec(
        select(Disclosure).where(Disclosure.case_id == case_id).order_by(col(Disclosure.number))
    ).all()
    contained = {
        r.step: r
        for r in session.exec(
            select(ContainmentRecord).where(ContainmentRecord.case_id == case_id)
        ).all()
    }
    items = session.exec(
        select(ActionItem).where(ActionItem.case_id == case_id).order_by(col(ActionItem.id))
    ).all()
    links = session.exec(
        select(Partner)
        .join(CasePartner, col(CasePartner.partner_id) == col(Partner.id))
        .where(CasePartner.case_id == case_id)
        .order_by(col(Partner.name))
    ).all()
    partner_ids = {d.partner_id for d in disclosures}
    partners = {
        p.id: p
        for p in session.exec(select(Partner).where(col(Partner.id).in_(partner_ids))).all()
        if p.id is not None
    }
    names = handles(
        session,
        [r.recorded_by_id for r in records]
        + [d.requested_by_id for d in disclosures]
        + [d.decided_by_id for d in disclosures]
        + [r.done_by_id for r in contained.values()]
        + [i.completed_by_id for i in items],
    )
    checklist = list(config.containment_for(case.category))
    listed = {s.name for s in checklist}
    # A step done before the desk's checklist changed stays visible.
    checklist += [
        ContainmentSpec(s, s.replace("_", " ").capitalize()) for s in contained if s not in listed
    ]
    containment = []
    for spec in checklist:
        record = contained.get(spec.name)
        if record is None:
            containment.append(ContainmentView(spec.name, spec.label, spec.needs_reference, False))
            continue
        containment.append(
            ContainmentView(
                spec.name,
                spec.label,
                spec.needs_reference,
                True,
                names.get(record.done_by_id, "?"),
                record.done_at,
                record.reference,
                record.note if shown or not record.note else HIDDEN,
            )
        )
    required = verification_required(case.category) or any(d.emergency for d in disclosures)
    facts = clock_facts(session, [case])[case_id]
    clocks = _with_deciders(session, case_id, legal_clocks(facts, config, now))
    return CaseworkView(
        case_id=case_id,
        ref=case.ref,
        category=case.category,
        sensitive=case.sensitive,
        revealed=revealed and case.sensitive,
        verification=_verification_view(records, names, shown, required),
        disclosures=tuple(_disclosure_view(d, partners, names) for d in disclosures),
        clocks=tuple(clocks),
        containment=tuple(containment),
        actions=tuple(_action_view(i, case.ref, now, names) for i in items),
        partners=tuple(_partner_view(p) for p in links),
    )


def overdue_summary(
    session: Session,
    cases: Sequence[Case],
    now: datetime,
    *,
    config: CaseworkConfig | None = None,
) -> dict[int, CaseworkFlags]:
    """Casework flags for the queue's visible rows (the cases as the caller read them), a
    few queries per chunk. A case with nothing to flag (no running clock, no open item,
    nothing to verify) is left out."""
    config = config or load_config(session)
    case_ids = [case.id for case in cases if case.id is not None]
    open_items: dict[int, list[ActionItem]] = defaultdict(list)
    verified_steps: dict[int, set[str]] = defaultdict(set)
    awaiting: dict[int, int] = defaultdict(int)
    for chunk in _chunks(case_ids):
        for item in session.exec(
            select(ActionItem).where(
                col(ActionItem.case_id).in_(chunk), ActionItem.status == ActionStatus.OPEN.value
            )
        ):
            open_items[item.case_id].append(item)
        for case_id, step in session.exec(
            select(VerificationRecord.case_id, VerificationRecord.step).where(
                col(VerificationRecord.case_id).in_(chunk)
            )
        ):
            verified_steps[case_id].add(step)
        for case_id in session.exec(
            select(Disclosure.case_id).where(
                col(Disclosure.case_id).in_(chunk),
                Disclosure.status == DisclosureStatus.REQUESTED.value,
            )
        ):
            awaiting[case_id] += 1
    facts = clock_facts(session, cases)
    out: dict[int, CaseworkFlags] = {}
    for case in cases:
        assert case.id is not None
        clock = most_urgent(legal_clocks(facts[case.id], config, now))
        items = open_items.get(case.id, [])
        dues = [i.due_at for i in items if i.due_at is not None]
        pending = verification_required(case.category) and bool(
            verification_missing(verified_steps.get(case.id, set()))
        )
        if clock is None and not items and not pending and not awaiting[case.id]:
            continue
        out[case.id] = CaseworkFlags(
            clock=clock,
            overdue_actions=sum(1 for d in dues if d <= now),
            open_actions=len(items),
            next_action_due_at=min(dues) if dues else None,
            verification_pending=pending,
            disclosures_awaiting_approval=awaiting[case.id],
        )
    return out


@dataclass(frozen=True, slots=True)
class CaseDisclosureView:
    case_id: int
    ref: str
    disclosure: DisclosureView


def disclosures_awaiting_approval(session: Session) -> list[CaseDisclosureView]:
    """Requested disclosures on every case, oldest first: a supervisor's to-do list."""
    rows = session.exec(
        select(Disclosure, Case.ref)
        .join(Case, col(Case.id) == col(Disclosure.case_id))
        .where(Disclosure.status == DisclosureStatus.REQUESTED.value)
        .order_by(col(Disclosure.requested_at), col(Disclosure.id))
    ).all()
    wanted = {row.partner_id for row, _ in rows}
    found = {
        p.id: p
        for p in session.exec(select(Partner).where(col(Partner.id).in_(wanted))).all()
        if p.id is not None
    }
    names = handles(session, [row.requested_by_id for row, _ in rows])
    return [
        CaseDisclosureView(row.case_id, ref, _disclosure_view(row, found, names))
        for row, ref in rows
    ]


def action_items(
    session: Session,
    now: datetime,
    *,
    case_id: int | None = None,
    overdue_only: bool = False,
    include_closed: bool = False,
) -> list[ActionView]:
    """Action items, soonest due first; `overdue_only` is what the handover lists."""
    statement = select(ActionItem, Case.ref).join(Case, col(Case.id) == col(ActionItem.case_id))
    if case_id is not None:
        statement = statement.where(ActionItem.case_id == case_id)
    if overdue_only or not include_closed:
        statement = statement.where(ActionItem.status == ActionStatus.OPEN.value)
    if overdue_only:
        statement = statement.where(col(ActionItem.due_at) <= now)
    rows = session.exec(statement).all()
    names = handles(session, [item.completed_by_id for item, _ in rows])
    views = [_action_view(item, ref, now, names) for item, ref in rows]
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(views, key=lambda v: (v.due_at or far, v.id))


def clocks_needing_attention(
    session: Session, now: datetime, *, config: CaseworkConfig | None = None
) -> list[CaseClockView]:
    """Every warning or breached legal clock, resolved cases included: a hold outlives the
    case, so its reminder must surface even when the case is long closed."""
    config = config or load_config(session)
    categories = [c for c, specs in config.clocks.items() if specs]
    if not categories:
        return []
    out: list[CaseClockView] = []
    statement = select(Case).where(col(Case.category).in_(categories)).order_by(col(Case.id))
    batch: list[Case] = []
    for case in session.exec(statement).yield_per(500):
        batch.append(case)
        if len(batch) == 500:
            out += _attention(session, batch, config, now)
            batch = []
    out += _attention(session, batch, config, now)
    return sorted(
        out, key=lambda v: (CLOCK_URGENCY[ClockState(v.clock.state)], v.clock.due_at, v.case_id)
    )


def _attention(
    session: Session, cases: Sequence[Case], config: CaseworkConfig, now: datetime
) -> list[CaseClockView]:
    facts = clock_facts(session, cases)
    out = []
    for case in cases:
        assert case.id is not None
        for clock in legal_clocks(facts[case.id], config, now):
            if clock.state in (ClockState.WARN, ClockState.BREACHED):
                out.append(CaseClockView(case.id, case.ref, case.status, clock))
    return out


def partners(session: Session, *, include_inactive: bool = False) -> list[PartnerView]:
    statement = select(Partner).order_by(col(Partner.name))
    if not include_inactive:
        statement = statement.where(col(Partner.active).is_(True))
    return [_partner_view(p) for p in session.exec(statement).all()]


# --- the yearly disclosure report --------------------------------------------


@dataclass(frozen=True, slots=True)
class DisclosureCount:
    basis: str
    basis_label: str
    agency: str
    disclosures: int
    accounts: int


@dataclass(frozen=True)
class DisclosureReport:
    """Counts of emergency disclosures made in one calendar year (UTC), by legal basis and
    agency. It holds counts only: no case, person, title or detail ever enters it."""

    year: int
    rows: tuple[DisclosureCount, ...]

    @property
    def total_disclosures(self) -> int:
        return sum(r.disclosures for r in self.rows)

    @property
    def total_accounts(self) -> int:
        return sum(r.accounts for r in self.rows)


def disclosure_report(session: Session, year: int) -> DisclosureReport:
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    statement = select(
        Disclosure.basis, Disclosure.basis_label, Disclosure.agency, Disclosure.accounts
    ).where(
        Disclosure.status == DisclosureStatus.DISCLOSED.value,
        col(Disclosure.emergency).is_(True),
        col(Disclosure.decided_at) >= start,
        col(Disclosure.decided_at) < end,
    )
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    labels: dict[str, str] = {}
    for basis, label, agency, accounts in session.exec(statement):
        tally = counts[(basis, agency)]
        tally[0] += 1
        tally[1] += accounts
        labels[basis] = label
    rows = tuple(
        DisclosureCount(basis, labels[basis], agency, n, accounts)
        for (basis, agency), (n, accounts) in sorted(counts.items())
    )
    return DisclosureReport(year, rows)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_markdown(report: DisclosureReport) -> str:
    lines = [
        f"# Emergency disclosures, {report.year}",
        "",
        f"Disclosures made on an emergency basis between {report.year}-01-01 and "
        f"{report.year}-12-31 (UTC), counted by legal basis and agency "
        "(18 U.S.C. 2702(b)(8), (c)(4); reported under 2702(d)). Counts only.",
        "",
    ]
    if not report.rows:
        lines.append("No emergency disclosures were made this year.")
        return "\n".join(lines) + "\n"
    lines += [
        "| Legal basis | Agency | Disclosures | Accounts |",
        "| --- | --- | ---: | ---: |",
    ]
    for row in report.rows:
        lines.append(
            f"| {_md_cell(row.basis_label)} | {_md_cell(row.agency)} | "
            f"{row.disclosures} | {row.accounts} |"
        )
    lines.append(f"| **Total** | | **{report.total_disclosures}** | **{report.total_accounts}** |")
    return "\n".join(lines) + "\n"


def _csv_cell(text: str) -> str:
    """Keep a spreadsheet from reading an agency's name as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def report_csv(report: DisclosureReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["year", "basis", "basis_label", "agency", "disclosures", "accounts"])
    for row in report.rows:
        writer.writerow(
            [
                report.year,
                row.basis,
                _csv_cell(row.basis_label),
                _csv_cell(row.agency),
                row.disclosures,
                row.accounts,
            ]
        )
    return buffer.getvalue()


# --- the service ------------------------------------------------------------


def _one_line(field_name: str, value: str | None, limit: int, *, required: bool) -> str:
    text = clean_text(field_name, value or "", limit, required=required)
    if any(ord(ch) < 32 for ch in text):
        raise BadInput(field_name, "a single line without control characters")
    return text


class CaseworkService(CaseService):
    """Casework actions on behalf of one person, subject to that person's role."""

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _require_supervisor(tx: Tx, what: str) -> None:
        if not tx.supervising:
            raise NotAllowed(f"only a supervisor or admin may {what}")

    @staticmethod
    def _partner(tx: Tx, name: str, field_name: str) -> Partner:
        wanted = (name or "").strip().lower()
        partner = tx.session.exec(select(Partner).where(Partner.name == wanted)).first()
        if partner is None or not partner.active:
            known = tx.session.exec(select(Partner.name).where(col(Partner.active).is_(True)))
            raise BadInput(
                field_name,
                f"no partner {name!r} in the directory{_suggest(wanted, known)} "
                "(see vigil partner list)",
            )
        return partner

    @staticmethod
    def _link(tx: Tx, case: Case, partner: Partner) -> bool:
        assert case.id is not None
        assert partner.id is not None
        exists = tx.session.exec(
            select(CasePartner).where(
                CasePartner.case_id == case.id, CasePartner.partner_id == partner.id
            )
        ).first()
        if exists is not None:
            return False
        tx.session.add(
            CasePartner(
                case_id=case.id, partner_id=partner.id, linked_at=tx.now, linked_by_id=tx.actor.id
            )
        )
        return True

    def _done(
        self, tx: Tx, case: Case, kind: str, text: str, action: str, detail: dict[str, Any]
    ) -> int:
        """Timeline, change feed and audit record of one casework decision."""
        add_timeline(tx.session, case, tx.now, kind, text, tx.actor.handle)
        self._finish(tx, case, action, detail)
        assert case.id is not None
        return case.id

    def _view(self, case_id: int) -> CaseworkView:
        """After a change: tell the consoles, then read the case's casework back."""
        self._changed(case_id)
        with self.db.read() as session:
            return casework_view(session, case_id, self.clock.now())

    # -- verification ------------------------------------------------------------

    def record_verification(
        self, actor: str, ref: str, step: str, facts: Mapping[str, str | None]
    ) -> VerificationView:
        """Record one checklist step; recording a step again replaces it (both are audited).
        The good-faith determination comes last: it rests on the other three."""
        cleaned = check_verification_fields(step, facts)
        name = VerificationStepName(step.strip().lower())
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            self._refuse_unless_may_work_on(tx, case, "verify a request on")
            assert case.id is not None
            assert tx.actor.id is not None
            if name == VerificationStepName.IDENTITY:
                cleaned.setdefault("caller", tx.actor.handle)
            existing = {
                r.step: r
                for r in tx.session.exec(
                    select(VerificationRecord).where(VerificationRecord.case_id == case.id)
                ).all()
            }
            if name == VerificationStepName.GOOD_FAITH:
                before = [s for s in verification_missing(existing) if s != name.value]
                if before:
                    raise NotAllowed(
                        f"record {', '.join(before)} first: the good-faith determination "
                        "rests on them"
                    )
            record = existing.get(name.value)
            replaced = record is not None
            if record is None:
                record = VerificationRecord(
                    case_id=case.id,
                    step=name.value,
                    recorded_at=tx.now,
                    recorded_by_id=tx.actor.id,
                )
            record.facts = cleaned
            record.recorded_at, record.recorded_by_id = tx.now, tx.actor.id
            tx.session.add(record)
            label = VERIFICATION_STEPS[name].label
            case_id = self._done(
                tx,
                case,
                "verification",
                f"Verification: {label} ({'corrected' if replaced else 'recorded'} "
                f"by {tx.actor.handle})",
                "verification.record",
                {"step": name.value, "replaced": replaced, "facts": digest(cleaned)},
            )
        return self._view(case_id).verification

    # -- disclosures -------------------------------------------------------------

    def request_disclosure(
        self,
        actor: str,
        ref: str,
        *,
        data: str | Sequence[str],
        to: str,
        basis: str,
        accounts: int = 1,
        override_reason: str = "",
    ) -> DisclosureView:
        """A specialist's request waits for a supervisor; a supervisor's is recorded as made.
        Verification must be complete first, unless a supervisor records why not."""
        categories = parse_data_categories(data)
        reason = clean_text("override_reason", override_reason, MAX_REASON, required=False)
        if not 1 <= accounts <= MAX_ACCOUNTS:
            raise BadInput("accounts", f"expected 1 to {MAX_ACCOUNTS}, got {accounts}")
        with self._tx(actor) as tx:
            config = load_config(tx.session)
            key = (basis or "").strip().lower()
            spec = config.bases.get(key)
            if spec is None:
                raise BadInput(
                    "basis",
                    f"expected one of {', '.join(config.bases)}, got {basis!r}"
                    f"{_suggest(key, config.bases)}",
                )
            case = self._case(tx, ref)
            self._refuse_unless_may_work_on(tx, case, "record a disclosure on")
            partner = self._partner(tx, to, "to")
            if PartnerKind(partner.kind) in INTERNAL_PARTNER_KINDS:
                raise BadInput(
                    "to", f"{partner.name} is a {partner.kind} team of our own, not a recipient"
                )
            assert case.id is not None
            assert tx.actor.id is not None
            assert partner.id is not None
            self._check_verified(tx, case, spec, reason)
            number = 1 + len(
                tx.session.exec(select(Disclosure.id).where(Disclosure.case_id == case.id)).all()
            )
            row = Disclosure(
                case_id=case.id,
                number=number,
                data=categories,
                accounts=accounts,
                partner_id=partner.id,
                agency=partner.agency,
                basis=spec.key,
                basis_label=spec.label,
                emergency=spec.emergency,
                requested_at=tx.now,
                requested_by_id=tx.actor.id,
                override_reason=reason or None,
            )
            if tx.supervising:
                row.status = DisclosureStatus.DISCLOSED.value
                row.decided_at, row.decided_by_id = tx.now, tx.actor.id
            tx.session.add(row)
            self._link(tx, case, partner)
            made = row.status == DisclosureStatus.DISCLOSED
            case_id = self._done(
                tx,
                case,
                "disclosure",
                f"Disclosure {number} {'made' if made else 'requested'} by {tx.actor.handle}: "
                f"{', '.join(categories)} to {partner.name} under {spec.key}"
                + (" (verification overridden)" if reason else ""),
                "disclosure.request",
                {
                    "number": number,
                    "status": row.status,
                    "data": categories,
                    "accounts": accounts,
                    "to": partner.name,
                    "basis": spec.key,
                    "override_reason": reason or None,
                },
            )
        return self._disclosure(case_id, number)

    @staticmethod
    def _check_verified(tx: Tx, case: Case, basis: BasisSpec, reason: str) -> None:
        if not verification_required(case.category, basis):
            if reason:
                raise BadInput("override_reason", "nothing to override: no verification needed")
            return
        recorded = tx.session.exec(
            select(VerificationRecord.step).where(VerificationRecord.case_id == case.id)
        ).all()
        missing = verification_missing(recorded)
        if not missing:
            if reason:
                raise BadInput("override_reason", "nothing to override: verification is complete")
            return
        if not tx.supervising:
            raise NotAllowed(
                f"verification of {case.ref} is incomplete (missing {', '.join(missing)}); "
                "only a supervisor may record a disclosure before it is complete"
            )
        if not reason:
            raise BadInput(
                "override_reason",
                f"verification is incomplete (missing {', '.join(missing)}): "
                "state why the disclosure cannot wait",
            )

    def _disclosure(self, case_id: int, number: int) -> DisclosureView:
        view = self._view(case_id)
        return next(d for d in view.disclosures if d.number == number)

    def _pending_disclosure(self, tx: Tx, case: Case, number: int) -> Disclosure:
        row = tx.session.exec(
            select(Disclosure)
            .where(Disclosure.case_id == case.id, Disclosure.number == number)
            .with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"{case.ref} has no disclosure {number}")
        if row.status != DisclosureStatus.REQUESTED:
            raise NothingToDo(f"disclosure {number} of {case.ref} is already {row.status}")
        return row

    def approve_disclosure(self, actor: str, ref: str, number: int) -> DisclosureView:
        with self._tx(actor) as tx:
            self._require_supervisor(tx, "approve a disclosure")
            case = self._case(tx, ref)
            row = self._pending_disclosure(tx, case, number)
            row.status = DisclosureStatus.DISCLOSED.value
            row.decided_at, row.decided_by_id = tx.now, tx.actor.id
            tx.session.add(row)
            case_id = self._done(
                tx,
                case,
                "disclosure",
                f"Disclosure {number} approved and made by {tx.actor.handle}",
                "disclosure.approve",
                {"number": number},
            )
        return self._disclosure(case_id, number)

    def decline_disclosure(self, actor: str, ref: str, number: int, reason: str) -> DisclosureView:
        text = clean_text("reason", reason, MAX_REASON, required=True)
        with self._tx(actor) as tx:
            self._require_supervisor(tx, "decline a disclosure")
            case = self._case(tx, ref)
            row = self._pending_disclosure(tx, case, number)
            row.status = DisclosureStatus.DECLINED.value
            row.decided_at, row.decided_by_id = tx.now, tx.actor.id
            row.decline_reason = text
            tx.session.add(row)
            case_id = self._done(
                tx,
                case,
                "disclosure",
                f"Disclosure {number} declined by {tx.actor.handle}",
                "disclosure.decline",
                {"number": number, "reason": text},
            )
        return self._disclosure(case_id, number)

    # -- legal clocks --------------------------------------------------------------

    @staticmethod
    def _clock_spec(config: CaseworkConfig, case: Case, name: str | None, fits: str) -> ClockSpec:
        specs = config.clocks_for(case.category)
        candidates = [s for s in specs if _fits(s, fits)]
        if name:
            wanted = name.strip().lower()
            for spec in specs:
                if spec.name == wanted:
                    if spec not in candidates:
                        raise BadInput("clock", f"{spec.name} is not {FITS_TEXT[fits]}")
                    return spec
            raise BadInput(
                "clock",
                f"expected one of {', '.join(s.name for s in candidates) or '(none)'} "
                f"for a {case.category} case, got {name!r}",
            )
        if not candidates:
            raise NothingToDo(
                f"{case.ref} ({case.category}) has no clock that is {FITS_TEXT[fits]}"
            )
        if len(candidates) > 1:
            raise BadInput(
                "clock", f"expected one of {', '.join(s.name for s in candidates)} (--clock)"
            )
        return candidates[0]

    def _clock_now(self, tx: Tx, case: Case, config: CaseworkConfig, name: str) -> ClockView:
        facts = clock_facts(tx.session, [case])
        assert case.id is not None
        return next(c for c in legal_clocks(facts[case.id], config, tx.now) if c.name == name)

    def _clock_event(
        self,
        tx: Tx,
        case: Case,
        clock: str,
        kind: ClockEventKind,
        at: datetime,
        reference: str | None = None,
        note: str = "",
    ) -> None:
        assert case.id is not None
        assert tx.actor.id is not None
        tx.session.add(
            ClockEvent(
                case_id=case.id,
                clock=clock,
                kind=kind.value,
                at=at,
                recorded_at=tx.now,
                by_id=tx.actor.id,
                reference=reference,
                note=note,
            )
        )

    def _clock_result(self, case_id: int, name: str) -> ClockView:
        view = self._view(case_id)
        return next(c for c in view.clocks if c.name == name)

    def file_report(
        self,
        actor: str,
        ref: str,
        *,
        report_id: str,
        clock: str | None = None,
        filed_at: datetime | None = None,
    ) -> ClockView:
        """Record the report a deadline clock asks for (a CyberTipline report): its id, when
        it was filed and by whom. A hold that starts at the report starts then."""
        reference = _one_line("report_id", report_id, MAX_REFERENCE, required=True)
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            self._refuse_unless_may_work_on(tx, case, "file a report for")
            config = load_config(tx.session)
            spec = self._clock_spec(config, case, clock, "file")
            when = (filed_at or tx.now).astimezone(UTC)
            if when > tx.now:
                raise BadInput("filed_at", "expected a time that has passed, not a future one")
            if when < case.created_at:
                raise BadInput(
                    "filed_at", f"expected a time after the case was opened ({case.created_at})"
                )
            current = self._clock_now(tx, case, config, spec.name)
            if current.state == ClockState.DONE:
                raise NothingToDo(f"{spec.name} of {case.ref} is already {current.outcome}")
            self._clock_event(tx, case, spec.name, ClockEventKind.FILED, when, reference)
            case_id = self._done(
                tx,
                case,
                "clock",
                f"{spec.label}: filed as {reference} by {tx.actor.handle}",
                "clock.file",
                {"clock": spec.name, "report_id": reference, "filed_at": when.isoformat()},
            )
        return self._clock_result(case_id, spec.name)

    def extend_hold(
        self, actor: str, ref: str, *, clock: str | None = None, note: str = ""
    ) -> ClockView:
        """Extend a hold on a renewed request (2703(f): once, by 90 days), before it ends."""
        text = clean_text("note", note, MAX_REASON, required=False)
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            self._refuse_unless_may_work_on(tx, case, "extend a hold on")
            config = load_config(tx.session)
            spec = self._clock_spec(config, case, clock, "extend")
            current = self._clock_now(tx, case, config, spec.name)
            if current.state == ClockState.PENDING:
                raise NothingToDo(f"{spec.name} of {case.ref} has not started yet")
            if current.state == ClockState.DONE:
                raise NotAllowed(
                    f"{spec.name} of {case.ref} already {current.outcome}; a renewed request "
                    "after that is a new preservation request"
                )
            if current.extensions_left <= 0:
                times = "once" if spec.max_extensions == 1 else f"{spec.max_extensions} times"
                raise NotAllowed(f"{spec.name} may be extended {times}, and already was")
            self._clock_event(tx, case, spec.name, ClockEventKind.EXTENDED, tx.now, note=text)
            case_id = self._done(
                tx,
                case,
                "clock",
                f"{spec.label}: extended by {spec.extension} by {tx.actor.handle}",
                "clock.extend",
                {"clock": spec.name, "extension": str(spec.extension), "note": bool(text)},
            )
        return self._clock_result(case_id, spec.name)

    def waive_clock(self, actor: str, ref: str, *, clock: str, reason: str) -> ClockView:
        """A supervisor ends a clock early and says why (not reportable; hold released)."""
        text = clean_text("reason", reason, MAX_REASON, required=True)
        with self._tx(actor) as tx:
            self._require_supervisor(tx, "waive a legal clock")
            case = self._case(tx, ref)
            config = load_config(tx.session)
            spec = self._clock_spec(config, case, clock, "any")
            current = self._clock_now(tx, case, config, spec.name)
            if current.state == ClockState.DONE:
                raise NothingToDo(f"{spec.name} of {case.ref} is already {current.outcome}")
            self._clock_event(tx, case, spec.name, ClockEventKind.WAIVED, tx.now, note=text)
            case_id = self._done(
                tx,
                case,
                "clock",
                f"{spec.label}: waived by {tx.actor.handle}",
                "clock.waive",
                {"clock": spec.name, "reason": text},
            )
        return self._clock_result(case_id, spec.name)

    # -- containment ---------------------------------------------------------------

    def mark_contained(
        self, actor: str, ref: str, step: str, *, reference: str = "", note: str = ""
    ) -> ContainmentView:
        ref_text = _one_line("reference", reference, MAX_REFERENCE, required=False)
        note_text = clean_text("note", note, MAX_REASON, required=False)
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            self._refuse_unless_may_work_on(tx, case, "record containment on")
            assert case.id is not None
            assert tx.actor.id is not None
            checklist = load_config(tx.session).containment_for(case.category)
            wanted = (step or "").strip().lower()
            spec = next((s for s in checklist if s.name == wanted), None)
            if spec is None:
                names = [s.name for s in checklist]
                raise BadInput(
                    "step",
                    f"expected one of {', '.join(names) or '(none)'} for a {case.category} "
                    f"case, got {step!r}{_suggest(wanted, names)}",
                )
            if spec.needs_reference and not ref_text:
                raise BadInput(
                    "reference", f"{spec.name} needs a hash reference, such as sha256:..."
                )
            done = tx.session.exec(
                select(ContainmentRecord).where(
                    ContainmentRecord.case_id == case.id, ContainmentRecord.step == spec.name
                )
            ).first()
            if done is not None:
                raise NothingToDo(f"{spec.name} of {case.ref} is already done")
            tx.session.add(
                ContainmentRecord(
                    case_id=case.id,
                    step=spec.name,
                    done_at=tx.now,
                    done_by_id=tx.actor.id,
                    reference=ref_text or None,
                    note=note_text,
                )
            )
            case_id = self._done(
                tx,
                case,
                "containment",
                f"Containment: {spec.label} (by {tx.actor.handle})",
                "containment.done",
                {"step": spec.name, "reference": ref_text or None, "note": bool(note_text)},
            )
        view = self._view(case_id)
        return next(c for c in view.containment if c.step == spec.name)

    # -- partners ------------------------------------------------------------------

    def add_partner(
        self,
        actor: str,
        *,
        name: str,
        kind: str,
        agency: str,
        contact: str = "",
        verified_channel: str = "",
    ) -> PartnerView:
        """Directory entries are trusted by every identity check: supervisors keep them."""
        key = (name or "").strip().lower()
        if not BASIS_KEY.match(key):
            raise BadInput("name", f"expected {BASIS_KEY_RULE}, got {name!r}")
        try:
            partner_kind = PartnerKind((kind or "").strip().lower())
        except ValueError:
            allowed = ", ".join(k.value for k in PartnerKind)
            raise BadInput("kind", f"expected one of {allowed}, got {kind!r}") from None
        agency_text = _one_line("agency", agency, 200, required=True)
        contact_text = _one_line("contact", contact, 500, required=False)
        channel = _one_line(
            "verified_channel",
            verified_channel,
            500,
            required=partner_kind == PartnerKind.LAW_ENFORCEMENT,
        )
        with self._tx(actor) as tx:
            self._require_supervisor(tx, "add to the partner directory")
            if tx.session.exec(select(Partner).where(Partner.name == key)).first():
                raise NothingToDo(f"partner {key!r} is already in the directory")
            partner = Partner(
                name=key,
                kind=partner_kind.value,
                agency=agency_text,
                contact=contact_text,
                verified_channel=channel,
                created_at=tx.now,
                created_by_id=tx.actor.id,
            )
            tx.session.add(partner)
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="partner.add",
                detail={"name": key, "kind": partner_kind.value, "agency": agency_text},
            )
        return _partner_view(partner)

    def link_partner(self, actor: str, ref: str, partner_name: str) -> PartnerView:
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            self._refuse_unless_may_work_on(tx, case, "link a partner to")
            partner = self._partner(tx, partner_name, "partner")
            if not self._link(tx, case, partner):
                raise NothingToDo(f"{partner.name} is already linked to {case.ref}")
            case_id = self._done(
                tx,
                case,
                "partner",
                f"Partner {partner.name} ({partner.agency}) linked by {tx.actor.handle}",
                "partner.link",
                {"partner": partner.name},
            )
        self._changed(case_id)
        return _partner_view(partner)

    # -- action items ----------------------------------------------------------------

    def add_action(
        self,
        actor: str,
        ref: str,
        title: str,
        *,
        owner: str | None = None,
        partner: str | None = None,
        due_at: datetime | None = None,
    ) -> ActionView:
        """An action item owned by a responder (`owner`) or a partner team (`partner`)."""
        text = check_title(title)
        if bool(owner) == bool(partner):
            raise BadInput(
                "owner", "expected one owner: a responder (owner) or a partner team (partner)"
            )
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            self._refuse_unless_may_work_on(tx, case, "add action items to")
            assert case.id is not None
            if due_at is not None and due_at <= tx.now:
                raise BadInput("due", f"expected a time after now, got {due_at.isoformat()}")
            if owner:
                person = tx.session.exec(
                    select(Responder).where(Responder.handle == owner.strip())
                ).first()
                if person is None or not person.active:
                    raise BadInput("owner", f"no active responder {owner!r}")
                owner_name, kind = person.handle, OwnerKind.PERSON
            else:
                team = self._partner(tx, partner or "", "partner")
                self._link(tx, case, team)
                owner_name, kind = team.name, OwnerKind.PARTNER
            item = ActionItem(
                case_id=case.id,
                title=text,
                owner=owner_name,
                owner_kind=kind.value,
                due_at=due_at,
                created_at=tx.now,
            )
            tx.session.add(item)
            tx.session.flush()
            assert item.id is not None
            case_id = self._done(
                tx,
                case,
                "action_item",
                f"Action item {item.id} for {owner_name}: {text}",
                "action.add",
                {
                    "item": item.id,
                    "owner": owner_name,
                    "owner_kind": kind.value,
                    "due_at": due_at.isoformat() if due_at else None,
                },
            )
            item_id = item.id
        return self._action(case_id, item_id)

    def _action(self, case_id: int, item_id: int) -> ActionView:
        view = self._view(case_id)
        return next(a for a in view.actions if a.id == item_id)

    def close_action(
        self, actor: str, ref: str, item_id: int, *, status: str = ActionStatus.DONE
    ) -> ActionView:
        """Mark an item done (or cancelled): its owner, the case's assignee or a supervisor."""
        outcome = ActionStatus(status)
        if outcome == ActionStatus.OPEN:
            raise BadInput("status", "expected done or cancelled")
        with self._tx(actor) as tx:
            case = self._case(tx, ref)
            item = tx.session.get(ActionItem, item_id)
            if item is None or item.case_id != case.id:
                raise NotFound(f"{case.ref} has no action item {item_id}")
            owns = item.owner_kind == OwnerKind.PERSON and item.owner == tx.actor.handle
            if not owns:
                self._refuse_unless_may_work_on(tx, case, "close action items of")
            if item.status != ActionStatus.OPEN:
                raise NothingToDo(f"action item {item_id} is already {item.status}")
            item.status = outcome.value
            item.completed_at, item.completed_by_id = tx.now, tx.actor.id
            tx.session.add(item)
            case_id = self._done(
                tx,
                case,
                "action_item",
                f"Action item {item_id} {outcome.value} by {tx.actor.handle}",
                f"action.{'done' if outcome == ActionStatus.DONE else 'cancel'}",
                {"item": item_id},
            )
        return self._action(case_id, item_id)

    # -- settings --------------------------------------------------------------------

    def apply_settings(self, actor: str, document: Mapping[str, Any]) -> CaseworkConfig:
        """Store the desk's casework tables from a team file (supervisors and admins)."""
        settings = settings_document(document)
        config = effective_config(settings)
        with self._tx(actor) as tx:
            self._require_supervisor(tx, "change the casework settings")
            if stored_settings(tx.session) == settings:
                raise NothingToDo("the casework settings are already these")
            fingerprint = store_settings(tx.session, settings, tx.actor.handle, tx.now)
            audit.append(
                tx.session,
                at=tx.now,
                actor=tx.actor.handle,
                action="casework.settings",
                detail={"settings": fingerprint, "tables": sorted(settings)},
            )
        return config

    def casework(self, actor: str, ref: str, *, reveal: bool = False) -> CaseworkView:
        """The casework of a case for `actor`; revealing a sensitive case is audited."""
        self.require_actor(actor)
        with self.db.read() as session:
            case = session.exec(select(Case).where(Case.ref == ref.strip().upper())).first()
            if case is None:
                raise NotFound(f"no case {ref!r}")
            case_id, sensitive = case.id, case.sensitive
        assert case_id is not None
        if reveal and sensitive:
            self.reveal(actor, ref, reason="casework")
        with self.db.read() as session:
            return casework_view(session, case_id, self.clock.now(), revealed=reveal)


FITS_TEXT = {
    "file": "a deadline that takes a filed report",
    "extend": "a hold that can be extended",
    "any": "a clock",
}


def _fits(spec: ClockSpec, use: str) -> bool:
    if use == "file":
        return spec.kind == ClockKind.DEADLINE
    if use == "extend":
        return spec.kind == ClockKind.HOLD and spec.max_extensions > 0
    return True

"""The casework rules, pure: the desk's casework settings read from the team file, legal
clocks computed from stored facts, and what verifying an emergency request takes.

Legal clocks are pure: `legal_clocks(facts, config, now)` computes them from stored facts
(when the case was received, when a report was filed, how often a hold was extended), so
nothing about a deadline is ever stored that could go stale.

The desk's settings (`[clocks]`, `[disclosure_basis]`, `[containment]` in the team file)
are read by `parse_casework_config`, each problem named by its key path; a category or
basis the desk names replaces the built-in one of that name, the rest keep the defaults.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from app.core.errors import BadInput, VigilError
from app.core.text import clean_text, line_problem
from app.rules.clock_presets import PRESETS, US_PRESET, with_presets
from data.domain import (
    CLOCK_SPAN,
    CLOCK_URGENCY,
    CLOCK_YEARS,
    Category,
    ClockKind,
    ClockState,
    DataCategory,
    VerificationStepName,
    clock_state,
    format_duration,
    parse_duration,
)
from widgets.views import (
    ClockView,
)

MAX_FACT = 2_000


# --- settings ---------------------------------------------------------------

CASEWORK_KEYS = ("clocks", "disclosure_basis", "containment", "clock_presets")
CASEWORK_TABLES = ("clocks", "disclosure_basis", "containment")
CLOCK_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
BASIS_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
CLOCK_NAME_RULE = "a name of lowercase letters, digits and '_' (32 at most)"
BASIS_KEY_RULE = "a key of lowercase letters, digits, '.', '_' or '-' (32 at most)"
_YEARS = re.compile(r"^([0-9]+)y$")

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


_DEFAULT_PRESETS = tuple(name for name, preset in PRESETS.items() if preset.default_on)


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


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_span(text: object) -> Span:
    """`90d`, `24h`, ... or whole calendar years `1y`; ValueError says what was expected."""
    if isinstance(text, str):
        years = _YEARS.match(text.strip())
        if years and len(years.group(1)) <= 4 and int(years.group(1)) > 0:
            if int(years.group(1)) > CLOCK_YEARS.high:
                raise ValueError(f"expected at most {CLOCK_YEARS.high}y, got {text!r}")
            return Span(years=int(years.group(1)))
        if not years:
            return Span(delta=parse_duration(text, CLOCK_SPAN))
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
                    f"unknown key {key!r}{suggest(str(key), allowed)} "
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
        problem = line_problem(value.strip())
        if problem:
            self.fail(f"{path}.{key}", problem)
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
            f"unknown category {key!r}{suggest(key, allowed)} (expected {', '.join(allowed)})",
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

    def presets(self, value: object) -> list[str]:
        """The shipped clock presets the desk switched on (`clock_presets`)."""
        if not isinstance(value, list | tuple):
            self.fail("clock_presets", f"expected an array of preset names, got {_describe(value)}")
            return []
        names: list[str] = []
        for index, name in enumerate(value):
            if name not in PRESETS:
                self.fail(
                    f"clock_presets[{index}]",
                    f"expected one of {', '.join(PRESETS)}, got {_describe(name)}",
                )
            elif name not in names:
                names.append(name)
        return names

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
    presets = reader.presets(document.get("clock_presets", list(_DEFAULT_PRESETS)))
    document = with_presets(document, presets)
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
    presets = stored.get("clock_presets", list(_DEFAULT_PRESETS))
    with_us = isinstance(presets, list | tuple) and US_PRESET in presets
    merged: dict[str, Any] = {}
    for key in CASEWORK_TABLES:
        own = stored.get(key, {})
        if not isinstance(own, dict):
            merged[key] = own  # not a table: kept, so that its reader refuses it
            continue
        # The built-in clocks are the US preset: a desk that leaves it out has none of them.
        builtin = DEFAULT_SETTINGS[key] if key != "clocks" or with_us else {}
        merged[key] = {**builtin, **own}
    merged["clock_presets"] = presets
    return merged


def effective_config(stored: Mapping[str, Any]) -> CaseworkConfig:
    return parse_casework_config(merged_settings(stored))


@lru_cache(maxsize=8)
def config_of(document: str) -> CaseworkConfig:
    """The configuration a stored document (as canonical JSON) means: every queue window
    asks for it, and it changes only when a team file is applied."""
    return effective_config(json.loads(document))


DEFAULT_CONFIG = effective_config({})


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


def most_urgent(clocks: Iterable[ClockView]) -> ClockView | None:
    """The running clock to show in a queue row: breached, then warning, then soonest."""
    running = [c for c in clocks if c.running and c.due_at is not None]
    if not running:
        return None
    return min(running, key=lambda c: (CLOCK_URGENCY[ClockState(c.state)], c.due_at))


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
# What each verification fact means, as the command line and the console explain it.
FACT_FLAGS = {
    "contacted": "whom you reached, e.g. 'Metro PD dispatch, Sgt. Lee'",
    "via": "the number or address used",
    "directory": "where that number came from, independently of the request",
    "caller": "who made the contact (default: you)",
    "agency": "the requesting agency",
    "officer": "the requesting officer",
    "badge": "the officer's badge or ID number",
    "danger": "death, serious_injury or both",
    "statement": "the emergency as the requester states it",
    "determination": "why you believe, in good faith, that disclosure cannot wait",
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

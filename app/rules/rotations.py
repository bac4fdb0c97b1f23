"""Rotation and schedule math: who is on call when, as pure functions of time.

Every datetime going in or out is timezone-aware and returned in UTC (a naive one is a
ValueError). Wall-clock reasoning happens only inside, in each rotation's own zone. No database,
no screen: loaders build the specs below and the engine, calendar and console ask the questions.

The rules other parts rely on:

* **Turns.** The k-th turn of a rotation starts at the wall time ``handoff`` on ``start`` plus
  ``k * shift`` of local calendar time (wall-clock arithmetic in the rotation's zone), so a 08:00
  hand-off stays at 08:00 local across a daylight-saving change and an 8h turn hands off at
  00:00/08:00/16:00 local. A turn spanning a change is that much longer or shorter (25h or 23h
  for a one-day turn). Turn k belongs to ``members[(k + offset) % len(members)]``. Before turn
  0 nobody is on call from the rotation. The turn at an instant is computed from the elapsed
  wall time, never by walking from the start date.
* **Wall times that do not exist or exist twice.** A wall time inside a spring-forward gap
  resolves to the instant the gap ends (a 02:30 hand-off on a 02:00->03:00 day happens at
  03:00); a wall time that occurs twice resolves to its first occurrence (``fold=0``). Both rules
  keep turn starts in order, so turns always tile time; a turn whose whole span lies inside a gap
  has no length and is skipped. (PEP 495's own reading of a gap time, 03:30, could start a turn
  after the next one.)
* **Restrictions.** ``days`` and ``hours`` mask turns without moving them: the turns of masked
  days still pass, unseen. The allowed time is one window per allowed local day, the whole day or
  ``hours`` from start to end; a window that wraps midnight (``20:00-08:00``) belongs to the day
  it starts on (Friday 20:00 to Saturday 08:00 is Friday's). Window edges are wall times resolved
  by the rule above, so inside a repeated hour the answer follows the instant, not the ambiguous
  reading of the clock.
* **Changes.** A changed rotation is a new version from its next hand-off (`change_rotation`):
  the turn under way and the past keep the version that dealt them (``earlier``), so removing
  an off-duty member never moves who is on call now nor rewrites a past shift. The next turn
  goes to whoever the old order gave it to, else to the next in that order still a member;
  ``offset`` carries that on in the new order.
* **Schedules.** Layers stack: where a later layer's rotation has someone on call, that person
  is on call; elsewhere earlier layers show through. On a holiday of the schedule's region (the
  whole local day in the schedule's zone) the holiday cover takes the day, above every layer.
  The schedule's zone is its own `timezone`, else its first layer's (the zone the team file
  reads an override time without an offset in), else UTC for a schedule without layers.
  Overrides lie on top of everything; of two overlapping overrides the later one in the tuple
  wins. Where nobody is on call there is a coverage gap.

The questions: `rotation_turns`, `rotation_shifts`, `rotation_on_call` and `next_handoff` for
one rotation; `schedule_shifts` (merged effective shifts of a window, for calendars),
`coverage_gaps`, `fairness`, and the point questions `on_call`, `next_change` and
`next_shift_for`, whose shifts come back whole (not clipped to a window) up to a year either
side. `on_call_many` answers `on_call` for many instants at the cost of one window.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.core.errors import BadInput
from app.core.times import bounded_instant
from data.domain import (
    SHIFT_LENGTH,
    check_day,
    check_duration,
    format_duration,
    parse_duration,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_SHIFT = SHIFT_LENGTH.low
_DAY = timedelta(days=1)
WALL_FORMAT = "%Y-%m-%d %H:%M"
_TICK = timedelta(microseconds=1)
# Point questions (on_call, next_change...) look a day around first and widen by _GROWTH only
# where a shift runs on; a shift reaching more than _REACH away is clipped there.
_FIRST_LOOK = timedelta(days=1)
_GROWTH = 4
_REACH = timedelta(days=366)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")

Window = tuple[datetime, datetime]
VersionSpan = tuple["RotationSpec", datetime, datetime]


# --- parsing and formatting the team-file spellings -------------------------


def parse_handoff(text: str) -> time:
    """Parse a wall-clock time `HH:MM` (00:00..23:59)."""
    match = _CLOCK.match(str(text).strip())
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ValueError(f"expected a time HH:MM between 00:00 and 23:59, got {text!r}")


def format_handoff(moment: time) -> str:
    return moment.strftime("%H:%M")


def parse_hours(text: str) -> tuple[time, time]:
    """Parse `08:00-20:00`; an end before the start (`20:00-08:00`) wraps past midnight."""
    parts = str(text).split("-")
    if len(parts) != 2:
        raise ValueError(f"expected hours as HH:MM-HH:MM such as 08:00-20:00, got {text!r}")
    first, last = parse_handoff(parts[0]), parse_handoff(parts[1])
    if first == last:
        raise ValueError(
            f"hours {text!r} start and end at the same time; leave hours out for the whole day"
        )
    return first, last


def format_hours(hours: tuple[time, time]) -> str:
    return f"{format_handoff(hours[0])}-{format_handoff(hours[1])}"


def parse_days(names: Sequence[str]) -> frozenset[int]:
    """Parse day names `mon`..`sun` (any case) into weekday numbers, 0 = Monday."""
    if isinstance(names, str):
        raise ValueError(f"expected a list of day names such as ['tue', 'wed'], got {names!r}")
    days = set()
    for name in names:
        key = str(name).strip().lower()
        if key not in WEEKDAYS:
            raise ValueError(f"expected one of {', '.join(WEEKDAYS)}, got {name!r}")
        days.add(WEEKDAYS.index(key))
    if not days:
        raise ValueError("expected at least one day name, got an empty list")
    return frozenset(days)


def format_days(days: frozenset[int]) -> list[str]:
    """The team-file spelling of a day set, Monday first."""
    return [WEEKDAYS[day] for day in sorted(days)]


# --- specs ------------------------------------------------------------------


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _as_utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{what}: expected a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: expected a timezone-aware datetime, got naive {value}")
    return value.astimezone(UTC)


def _check_clock(value: object, what: str) -> None:
    if not isinstance(value, time) or value.tzinfo is not None:
        raise ValueError(f"{what}: expected a wall-clock time without zone, got {value!r}")
    if value.second or value.microsecond:
        raise ValueError(f"{what}: expected whole minutes, got {value.isoformat()}")


@dataclass(frozen=True, slots=True)
class RotationSpec:
    """Members taking turns on the wall clock of `timezone`; checked on construction."""

    name: str
    timezone: str
    shift: timedelta
    handoff: time
    start: date
    members: tuple[str, ...]
    days: frozenset[int] | None = None  # 0 = Monday .. 6 = Sunday
    hours: tuple[time, time] | None = None  # local; end before start wraps midnight
    # History (see "Changes" above): this version deals from `since`; `earlier` answers before.
    since: datetime | None = None
    offset: int = 0  # turn k belongs to members[(k + offset) % len(members)]
    earlier: RotationSpec | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))
        if self.days is not None:
            object.__setattr__(self, "days", frozenset(self.days))
        if self.hours is not None:
            object.__setattr__(self, "hours", tuple(self.hours))
        if self.since is not None:
            object.__setattr__(self, "since", _as_utc(self.since, f"rotation {self.name!r}: since"))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the rotation and the field that is wrong."""
        where = f"rotation {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"{where}: name: expected a non-empty name")
        try:
            _zone(self.timezone)
        except ValueError as error:
            raise ValueError(f"{where}: timezone: {error}") from None
        if not isinstance(self.shift, timedelta):
            raise ValueError(f"{where}: shift: expected a duration, got {self.shift!r}")
        try:
            check_duration(self.shift, SHIFT_LENGTH)
        except ValueError as error:
            raise ValueError(f"{where}: shift: {error}") from None
        if self.shift % timedelta(minutes=1):
            raise ValueError(f"{where}: shift: expected whole minutes, got {self.shift}")
        _check_clock(self.handoff, f"{where}: handoff")
        if not isinstance(self.start, date) or isinstance(self.start, datetime):
            raise ValueError(f"{where}: start: expected a date, got {self.start!r}")
        try:
            check_day(self.start)
        except ValueError as error:
            raise ValueError(f"{where}: start: {error}") from None
        if not self.members:
            raise ValueError(f"{where}: members: expected at least one handle")
        for position, member in enumerate(self.members):
            if not isinstance(member, str) or not member.strip():
                raise ValueError(f"{where}: members[{position}]: expected a handle, got {member!r}")
        if self.days is not None:
            if not self.days:
                raise ValueError(f"{where}: days: expected at least one day")
            if not self.days <= frozenset(range(7)):
                raise ValueError(f"{where}: days: expected weekdays 0..6, got {sorted(self.days)}")
        if self.hours is not None:
            if len(self.hours) != 2:
                raise ValueError(f"{where}: hours: expected (start, end), got {self.hours!r}")
            _check_clock(self.hours[0], f"{where}: hours start")
            _check_clock(self.hours[1], f"{where}: hours end")
            if self.hours[0] == self.hours[1]:
                raise ValueError(
                    f"{where}: hours: start and end are both {format_handoff(self.hours[0])}; "
                    "leave hours out for the whole day"
                )
        if not isinstance(self.offset, int) or self.offset < 0:
            raise ValueError(f"{where}: offset: expected a whole number >= 0, got {self.offset!r}")
        if self.earlier is not None:
            if self.since is None:
                raise ValueError(f"{where}: since: a version with an earlier one needs a start")
            if self.earlier.since is not None and self.earlier.since >= self.since:
                raise ValueError(
                    f"{where}: since: {self.since.isoformat()} must be after the earlier "
                    f"version's {self.earlier.since.isoformat()}"
                )

    def versions(self) -> list[RotationSpec]:
        """This rotation's versions, oldest first; the last is this one."""
        chain: list[RotationSpec] = []
        version: RotationSpec | None = self
        while version is not None:
            chain.append(version)
            version = version.earlier
        return chain[::-1]

    def member(self, k: int) -> str:
        """Who holds turn `k` of this version."""
        return self.members[(k + self.offset) % len(self.members)]

    @classmethod
    def from_text(
        cls,
        *,
        name: str,
        timezone: str,
        shift: str,
        handoff: str,
        start: date | str,
        members: Sequence[str],
        days: Sequence[str] | str | None = None,
        hours: str | None = None,
        since: datetime | None = None,
        offset: int = 0,
        earlier: RotationSpec | None = None,
    ) -> RotationSpec:
        """Build from team-file / stored spellings; `days` may be a list or `tue,wed,thu`."""
        where = f"rotation {name!r}"
        try:
            parsed_shift = parse_duration(shift, SHIFT_LENGTH)
        except ValueError as error:
            raise ValueError(f"{where}: shift: {error}") from None
        try:
            parsed_handoff = parse_handoff(handoff)
        except ValueError as error:
            raise ValueError(f"{where}: handoff: {error}") from None
        if isinstance(start, str):
            try:
                start = date.fromisoformat(start.strip())
            except ValueError:
                raise ValueError(f"{where}: start: expected YYYY-MM-DD, got {start!r}") from None
        parsed_days = None
        if days is not None:
            names = days.split(",") if isinstance(days, str) else days
            try:
                parsed_days = parse_days(names)
            except ValueError as error:
                raise ValueError(f"{where}: days: {error}") from None
        parsed_hours = None
        if hours is not None:
            try:
                parsed_hours = parse_hours(hours)
            except ValueError as error:
                raise ValueError(f"{where}: hours: {error}") from None
        return cls(
            name=name,
            timezone=timezone,
            shift=parsed_shift,
            handoff=parsed_handoff,
            start=start,
            members=tuple(members),
            days=parsed_days,
            hours=parsed_hours,
            since=since,
            offset=offset,
            earlier=earlier,
        )

    def to_text(self) -> dict[str, object]:
        """The team-file spelling of this rotation (optional keys only when set)."""
        out: dict[str, object] = {
            "name": self.name,
            "timezone": self.timezone,
            "shift": format_duration(self.shift),
            "handoff": format_handoff(self.handoff),
            "start": self.start.isoformat(),
            "members": list(self.members),
        }
        if self.days is not None:
            out["days"] = format_days(self.days)
        if self.hours is not None:
            out["hours"] = format_hours(self.hours)
        return out


@dataclass(frozen=True, slots=True)
class OverrideSpec:
    """`who` is on call from `start` to `end` above every layer; stored as UTC."""

    who: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.who, str) or not self.who.strip():
            raise ValueError(f"override: who: expected a handle, got {self.who!r}")
        start = _as_utc(self.start, f"override for {self.who}: start")
        end = _as_utc(self.end, f"override for {self.who}: end")
        if end <= start:
            raise ValueError(
                f"override for {self.who}: end {end.isoformat()} must be after "
                f"start {start.isoformat()}"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)


@dataclass(frozen=True, slots=True)
class HolidaySpec:
    """A dated day off in a region; it only matters to schedules naming that region."""

    day: date
    name: str
    region: str

    def __post_init__(self) -> None:
        where = f"holiday {self.name!r}"
        if not isinstance(self.day, date) or isinstance(self.day, datetime):
            raise ValueError(f"{where}: date: expected a date, got {self.day!r}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"holiday on {self.day}: name: expected a non-empty name")
        if not isinstance(self.region, str) or not self.region.strip():
            raise ValueError(f"{where}: region: expected a region such as AU-NSW")


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """Rotations stacked as layers (later wins where it covers), holiday cover, overrides."""

    name: str
    layers: tuple[RotationSpec, ...]
    overrides: tuple[OverrideSpec, ...] = ()
    holidays: tuple[HolidaySpec, ...] = ()
    holiday_region: str | None = None
    holiday_cover: str | None = None
    timezone: str | None = None  # the zone of holiday dates; the first layer's when unset
    support_hours: tuple[time, time] | None = None
    """When low-urgency pages to people reached through it go out (in `zone`)."""
    support_days: frozenset[int] | None = None
    """The days of the support hours, 0 = Monday; None: every day."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        object.__setattr__(self, "holidays", tuple(self.holidays))
        where = f"schedule {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"{where}: name: expected a non-empty name")
        for position, layer in enumerate(self.layers):
            if not isinstance(layer, RotationSpec):
                raise ValueError(f"{where}: layers[{position}]: expected a rotation")
        if self.timezone is not None:
            try:
                _zone(self.timezone)
            except ValueError as error:
                raise ValueError(f"{where}: timezone: {error}") from None
        if self.holiday_cover is not None and self.holiday_region is None:
            raise ValueError(f"{where}: holiday_cover: needs a holiday_region to cover")
        if self.support_days is not None and self.support_hours is None:
            raise ValueError(f"{where}: support_days: needs support_hours")

    @property
    def zone(self) -> str:
        """Where the schedule's days are: its own zone, else its first layer's, else UTC."""
        if self.timezone:
            return self.timezone
        return self.layers[0].timezone if self.layers else "UTC"


@dataclass(frozen=True, slots=True)
class Shift:
    """`who` is on call from `start` to `end` (UTC) because of `source`.

    `source` is `rotation:<name>`, `override` or `holiday:<holiday name>`.
    """

    who: str
    start: datetime
    end: datetime
    source: str

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class FairnessRow:
    """One person's share of a window, as `fairness` reports it."""

    who: str
    hours: float  # time on call in the window
    shifts: int
    holiday_shifts: int  # shifts that touch a holiday of the schedule's region


# --- wall clock -> UTC --------------------------------------------------------


def wall_to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall time in `zone` as UTC: a repeated time's first occurrence, a gap's end.

    Every wall time Vigil reads (hand-offs, hours, a team file's times without an offset)
    goes through here, so they all resolve the same way."""
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap the two folds straddle the transition; find it to the second.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low = math.floor(min(first, other).timestamp())
    high = math.ceil(max(first, other).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


class WallTime(NamedTuple):
    """A time typed by a person (the calendar's override form, `vigil swap`), as the instant
    it names."""

    at: datetime  # UTC
    skipped: str
    """What was typed, when the clocks skip it that night (the time starts at the gap's
    end, as in a team file); empty otherwise."""


def parse_wall_time(field: str, text: str, zone: ZoneInfo) -> WallTime:
    """`2026-11-27 08:00` on the wall clock of `zone` (or with its own offset) as UTC.

    A wall time the clocks skip is read as the moment they skip to, one they pass twice as
    its first occurrence: the rule of every wall time Vigil reads (`wall_to_utc`).
    """
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(
            field, f"expected a date and time such as 2026-11-27 08:00, got {value!r}"
        ) from None
    if parsed.tzinfo is not None:
        return WallTime(bounded_instant(field, parsed), "")
    bounded_instant(field, parsed.replace(tzinfo=zone))  # in range before any arithmetic
    at = bounded_instant(field, wall_to_utc(parsed, zone))
    moved = at.astimezone(zone).replace(tzinfo=None) != parsed
    return WallTime(at, f"{parsed:{WALL_FORMAT}}" if moved else "")


def _day_window(day: date, hours: tuple[time, time] | None, zone: ZoneInfo) -> Window:
    """The UTC span of one local day, or of its hours window (which may end the next day)."""
    if hours is None:
        opens, closes, close_day = time(0), time(0), day + _DAY
    else:
        opens, closes = hours
        close_day = day if opens < closes else day + _DAY
    return (
        wall_to_utc(datetime.combine(day, opens), zone),
        wall_to_utc(datetime.combine(close_day, closes), zone),
    )


def _local_days(lo: datetime, hi: datetime, zone: ZoneInfo) -> Iterable[date]:
    """Local dates whose windows may touch [lo, hi), with a day of margin either side."""
    day = lo.astimezone(zone).date() - _DAY
    last = hi.astimezone(zone).date() + _DAY
    while day <= last:
        yield day
        day += _DAY


class _Turns:
    """The turn boundaries of one rotation."""

    __slots__ = ("base", "shift", "zone")

    def __init__(self, rotation: RotationSpec) -> None:
        self.zone = _zone(rotation.timezone)
        self.base = datetime.combine(rotation.start, rotation.handoff)
        self.shift = rotation.shift

    def start(self, k: int) -> datetime:
        return wall_to_utc(self.base + k * self.shift, self.zone)

    def index(self, at: datetime) -> int:
        """The turn in progress at `at`; -1 before the first hand-off."""
        if at < self.start(0):
            return -1
        wall = at.astimezone(self.zone).replace(tzinfo=None)
        k = max((wall - self.base) // self.shift, 0)
        # The wall-clock estimate is off by at most a DST jump: settle it on the true instants.
        while self.start(k) > at:
            k -= 1
        while self.start(k + 1) <= at:
            k += 1
        return k


# --- rotations ----------------------------------------------------------------


def _window(start: datetime, end: datetime) -> Window:
    lo, hi = _as_utc(start, "start"), _as_utc(end, "end")
    if hi < lo:
        raise ValueError(f"end {hi.isoformat()} is before start {lo.isoformat()}")
    return lo, hi


def _spans(rotation: RotationSpec, lo: datetime, hi: datetime) -> list[VersionSpan]:
    """[lo, hi) cut where one version of the rotation hands over to the next, oldest first."""
    out = []
    versions = rotation.versions()
    for position, version in enumerate(versions):
        begins = lo if version.since is None else max(lo, version.since)
        following = versions[position + 1].since if position + 1 < len(versions) else None
        ends = hi if following is None else min(hi, following)
        if begins < ends:
            out.append((version, begins, ends))
    return out


def _version_at(rotation: RotationSpec, at: datetime) -> RotationSpec | None:
    """The version dealing at `at`; None before the oldest one's `since`."""
    version: RotationSpec | None = rotation
    while version is not None and version.since is not None and at < version.since:
        version = version.earlier
    return version


def _version_turns(version: RotationSpec, lo: datetime, hi: datetime) -> list[Shift]:
    turns = _Turns(version)
    lo = max(lo, turns.start(0))
    if lo >= hi:
        return []
    source = f"rotation:{version.name}"
    out = []
    k = turns.index(lo)
    begins = turns.start(k)
    while begins < hi:
        ends = turns.start(k + 1)
        if ends > begins:  # a turn lost entirely in a DST gap has no length
            out.append(Shift(version.member(k), max(begins, lo), min(ends, hi), source))
        k += 1
        begins = ends
    return out


def _turns_in(rotation: RotationSpec, lo: datetime, hi: datetime) -> list[Shift]:
    return [
        turn
        for version, opens, closes in _spans(rotation, lo, hi)
        for turn in _version_turns(version, opens, closes)
    ]


def _allowed(rotation: RotationSpec, lo: datetime, hi: datetime) -> list[Window]:
    """The spans of [lo, hi) that the rotation's days and hours leave open, merged."""
    if rotation.days is None and rotation.hours is None:
        return [(lo, hi)] if lo < hi else []
    zone = _zone(rotation.timezone)
    out: list[Window] = []
    for day in _local_days(lo, hi, zone):
        if rotation.days is not None and day.weekday() not in rotation.days:
            continue
        opens, closes = _day_window(day, rotation.hours, zone)
        opens, closes = max(opens, lo), min(closes, hi)
        if opens >= closes:
            continue
        if out and out[-1][1] >= opens:
            out[-1] = (out[-1][0], max(out[-1][1], closes))
        else:
            out.append((opens, closes))
    return out


def _label(owner: Shift | None) -> tuple[str, str] | None:
    return None if owner is None else (owner.who, owner.source)


def _merge(shifts: Iterable[Shift]) -> list[Shift]:
    """Join touching pieces of the same person from the same source."""
    out: list[Shift] = []
    for piece in shifts:
        last = out[-1] if out else None
        if last and last.end == piece.start and _label(last) == _label(piece):
            out[-1] = Shift(last.who, last.start, piece.end, last.source)
        else:
            out.append(piece)
    return out


def rotation_turns(rotation: RotationSpec, start: datetime, end: datetime) -> list[Shift]:
    """The raw turns overlapping [start, end), ignoring restrictions, clipped to the window.

    After the first hand-off they tile the window exactly, one Shift per turn.
    """
    lo, hi = _window(start, end)
    return _turns_in(rotation, lo, hi)


def rotation_shifts(rotation: RotationSpec, start: datetime, end: datetime) -> list[Shift]:
    """Who is on call from this rotation in [start, end): turns masked by days and hours,
    clipped to the window, touching pieces of one person merged."""
    lo, hi = _window(start, end)
    return _merge(
        piece
        for version, opens, closes in _spans(rotation, lo, hi)
        for piece in _version_shifts(version, opens, closes)
    )


def _version_shifts(version: RotationSpec, lo: datetime, hi: datetime) -> list[Shift]:
    if len(set(version.members)) == 1:
        # One person holds every turn: on call whenever allowed, without walking the turns.
        lo = max(lo, _Turns(version).start(0))
        source = f"rotation:{version.name}"
        return [Shift(version.members[0], *span, source) for span in _allowed(version, lo, hi)]
    turns = _version_turns(version, lo, hi)
    if not turns:
        return []
    allowed = _allowed(version, turns[0].start, turns[-1].end)
    pieces = []
    first = 0
    for turn in turns:
        while first < len(allowed) and allowed[first][1] <= turn.start:
            first += 1
        position = first
        while position < len(allowed) and allowed[position][0] < turn.end:
            opens, closes = allowed[position]
            opens, closes = max(turn.start, opens), min(turn.end, closes)
            pieces.append(Shift(turn.who, opens, closes, turn.source))
            position += 1
    return pieces


def rotation_on_call(rotation: RotationSpec, at: datetime) -> str | None:
    """The member on call from this rotation at `at`, or None (before the start, or masked)."""
    at = _as_utc(at, "at")
    version = _version_at(rotation, at)
    if version is None:
        return None
    k = _Turns(version).index(at)
    if k < 0 or not _allowed(version, at, at + _TICK):
        return None
    return version.member(k)


def next_handoff(rotation: RotationSpec, at: datetime) -> datetime:
    """The first hand-off after `at`: the end of the turn under way (or the first turn's
    start), or where a later version takes over, whichever comes first. Masks do not count:
    a turn hidden by `days` or `hours` still ends at its hand-off."""
    at = _as_utc(at, "at")
    version = _version_at(rotation, at)
    versions = rotation.versions()
    if version is None:
        assert versions[0].since is not None
        return versions[0].since
    turns = _Turns(version)
    handoff = turns.start(turns.index(at) + 1)
    later = versions[versions.index(version) + 1 :]
    if later and later[0].since is not None:
        handoff = min(handoff, later[0].since)
    return handoff


def change_rotation(stored: RotationSpec, wanted: RotationSpec, now: datetime) -> RotationSpec:
    """`wanted` as a new version of `stored` from its next hand-off after `now`.

    The turn under way and every earlier one stay `stored`'s. The turn after the hand-off
    goes to whoever `stored` gave it to, or, if they are no longer a member, to the next in
    `stored`'s order who still is; the turns after it follow `wanted`'s order from there. A
    version that had not begun by `now` is replaced, not kept; a rotation whose first turn
    has not begun is simply `wanted`.
    """
    now = _as_utc(now, "now")
    current: RotationSpec | None = stored
    while current is not None and current.since is not None and current.since > now:
        current = current.earlier
    if current is None or (current.earlier is None and _Turns(current).index(now) < 0):
        return replace(wanted, since=None, offset=0, earlier=None)
    handoff = next_handoff(current, now)
    k = _Turns(current).index(handoff)
    order = [current.member(k + i) for i in range(len(current.members))]
    heir = next((who for who in order if who in wanted.members), None)
    k_wanted = _Turns(wanted).index(handoff)
    offset = 0
    if heir is not None and k_wanted >= 0:
        offset = (wanted.members.index(heir) - k_wanted) % len(wanted.members)
    if replace(wanted, offset=offset, since=current.since, earlier=current.earlier) == current:
        return current  # dealt as before: a change taken back before it began
    return replace(wanted, since=handoff, offset=offset, earlier=current)


# --- schedules ----------------------------------------------------------------


def _holidays(schedule: ScheduleSpec, lo: datetime, hi: datetime) -> list[tuple[Window, str]]:
    """The schedule-region holidays touching [lo, hi): whole local days, clipped, with names."""
    if schedule.holiday_region is None:
        return []
    region = schedule.holiday_region.casefold()
    names: dict[date, str] = {}
    for holiday in schedule.holidays:
        if holiday.region.casefold() == region:
            names.setdefault(holiday.day, holiday.name)
    if not names:
        return []
    zone = _zone(schedule.zone)
    out = []
    for day in _local_days(lo, hi, zone):
        if day in names:
            opens, closes = _day_window(day, None, zone)
            opens, closes = max(opens, lo), min(closes, hi)
            if opens < closes:
                out.append(((opens, closes), names[day]))
    return out


def _runs(schedule: ScheduleSpec, lo: datetime, hi: datetime) -> list[tuple[Window, Shift | None]]:
    """[lo, hi) cut into maximal runs of one owner (None = nobody), by painting each level in
    order of precedence: layers bottom to top, holiday cover, then overrides in order."""
    pieces: list[Shift] = []
    for layer in schedule.layers:
        pieces.extend(rotation_shifts(layer, lo, hi))
    if schedule.holiday_cover is not None:
        for (opens, closes), name in _holidays(schedule, lo, hi):
            pieces.append(Shift(schedule.holiday_cover, opens, closes, f"holiday:{name}"))
    for override in schedule.overrides:
        opens, closes = max(override.start, lo), min(override.end, hi)
        if opens < closes:
            pieces.append(Shift(override.who, opens, closes, "override"))
    bounds = sorted({lo, hi, *(p.start for p in pieces), *(p.end for p in pieces)})
    position = {instant: i for i, instant in enumerate(bounds)}
    owners: list[Shift | None] = [None] * (len(bounds) - 1)
    for piece in pieces:
        first, last = position[piece.start], position[piece.end]
        owners[first:last] = [piece] * (last - first)
    runs: list[tuple[Window, Shift | None]] = []
    for i, owner in enumerate(owners):
        if runs and _label(runs[-1][1]) == _label(owner):
            (opens, _), previous = runs[-1]
            runs[-1] = ((opens, bounds[i + 1]), previous)
        else:
            runs.append(((bounds[i], bounds[i + 1]), owner))
    return runs


def schedule_shifts(schedule: ScheduleSpec, start: datetime, end: datetime) -> list[Shift]:
    """The effective shifts in [start, end): sorted, non-overlapping, clipped to the window,
    touching pieces of one person from one source merged."""
    lo, hi = _window(start, end)
    return [
        Shift(owner.who, opens, closes, owner.source)
        for (opens, closes), owner in _runs(schedule, lo, hi)
        if owner is not None
    ]


def coverage_gaps(schedule: ScheduleSpec, start: datetime, end: datetime) -> list[Window]:
    """The spans of [start, end) where nobody is on call."""
    lo, hi = _window(start, end)
    return [window for window, owner in _runs(schedule, lo, hi) if owner is None]


class ShiftIndex:
    """Answers "who is on call at T" for many instants with one bisection each."""

    def __init__(self, shifts: Sequence[Shift]) -> None:
        self.shifts = list(shifts)  # sorted and non-overlapping, as schedule_shifts gives them
        self._starts = [piece.start for piece in self.shifts]

    def locate(self, at: datetime) -> int:
        """The position of the shift covering `at`, or -1."""
        i = bisect_right(self._starts, at) - 1
        return i if i >= 0 and at < self.shifts[i].end else -1

    def find(self, at: datetime) -> Shift | None:
        i = self.locate(at)
        return self.shifts[i] if i >= 0 else None


def _covering(schedule: ScheduleSpec, at: datetime) -> Shift | None:
    """The whole shift in progress at `at`, clipped to `at` plus or minus `_REACH`."""
    lo, hi = at - _FIRST_LOOK, at + _FIRST_LOOK
    found = ShiftIndex(schedule_shifts(schedule, lo, hi)).find(at)
    if found is None:
        return None
    start, end, step = found.start, found.end, _FIRST_LOOK
    # Extend only the clipped ends, each look further than the last.
    while start == lo > at - _REACH:
        step *= _GROWTH
        lo = max(lo - step, at - _REACH)
        before = schedule_shifts(schedule, lo, start)
        if not before or before[-1].end != start or _label(before[-1]) != _label(found):
            break
        start = before[-1].start
    step = _FIRST_LOOK
    while end == hi < at + _REACH:
        step *= _GROWTH
        hi = min(hi + step, at + _REACH)
        after = schedule_shifts(schedule, end, hi)
        if not after or after[0].start != end or _label(after[0]) != _label(found):
            break
        end = after[0].end
    return Shift(found.who, start, end, found.source)


def _within_reach(piece: Shift, at: datetime) -> Shift:
    """A whole shift as `_covering(at)` reports it."""
    lo, hi = at - _REACH, at + _REACH
    if lo <= piece.start and piece.end <= hi:
        return piece
    return Shift(piece.who, max(piece.start, lo), min(piece.end, hi), piece.source)


def on_call(schedule: ScheduleSpec, at: datetime) -> Shift | None:
    """The effective shift covering `at`, whole: its ends are exact unless more than a year
    away from `at`, where they are clipped to `at` plus or minus a year.

    For many instants use `on_call_many`, which computes the shifts once.
    """
    return _covering(schedule, _as_utc(at, "at"))


RUN_JOINS = 16
"""How many touching pieces of one person's run are followed; more is a broken schedule."""
_INSTANT = timedelta(microseconds=1)


def run_start(schedule: ScheduleSpec, who: str, start: datetime) -> datetime:
    """Where `who`'s stretch on call that is under way at `start` began: touching shifts of
    the same person (an override continuing a rotation turn) are followed back."""
    for _ in range(RUN_JOINS):
        before = on_call(schedule, start - _INSTANT)
        if before is None or before.who != who or before.start >= start:
            break
        start = before.start
    return start


def run_end(schedule: ScheduleSpec, who: str, end: datetime) -> datetime:
    """Where `who`'s stretch on call that reaches `end` ends, followed forward."""
    for _ in range(RUN_JOINS):
        after = on_call(schedule, end)
        if after is None or after.who != who or after.end <= end:
            break
        end = after.end
    return end


def on_call_many(schedule: ScheduleSpec, instants: Iterable[datetime]) -> list[Shift | None]:
    """`on_call` for each instant, in order and with the same answers, from one computation of
    the shifts the instants span."""
    points = [_as_utc(instant, f"instants[{i}]") for i, instant in enumerate(instants)]
    if not points:
        return []
    lo, hi = min(points) - _DAY, max(points) + _DAY
    shifts = schedule_shifts(schedule, lo, hi)
    # Only the pieces at the window's edges are clipped: give them their true extent. If even
    # that is out of reach, the answer depends on the instant: ask for those one by one.
    edges = []
    if shifts and shifts[0].start == lo:
        edges.append((0, lo))
    if shifts and shifts[-1].end == hi:
        edges.append((len(shifts) - 1, hi - _TICK))
    ask_each: set[int] = set()
    for position, probe in edges:
        piece = shifts[position]
        widened = _covering(schedule, probe) or piece
        # (union: one piece may be both edges, widened from each end in turn)
        start, end = min(piece.start, widened.start), max(piece.end, widened.end)
        shifts[position] = Shift(piece.who, start, end, piece.source)
        if widened.start == probe - _REACH or widened.end == probe + _REACH:
            ask_each.add(position)
    index = ShiftIndex(shifts)
    answers: list[Shift | None] = []
    for point in points:
        position = index.locate(point)
        if position < 0:
            answers.append(None)
        elif position in ask_each:
            answers.append(_covering(schedule, point))
        else:
            answers.append(_within_reach(shifts[position], point))
    return answers


def _ahead(schedule: ScheduleSpec, at: datetime) -> Iterable[Shift]:
    """Effective shifts from `at` on, within reach, computed a growing window at a time.

    A shift crossing from one window to the next comes out as two touching pieces.
    """
    lo, step = at, _FIRST_LOOK
    while lo < at + _REACH:
        hi = min(lo + step, at + _REACH)
        yield from schedule_shifts(schedule, lo, hi)
        lo, step = hi, step * _GROWTH


def next_change(schedule: ScheduleSpec, at: datetime) -> Shift | None:
    """The first effective shift to begin after `at` (who is on next), within a year.

    A change of source for the same person (rotation to override) counts as a new shift.
    """
    at = _as_utc(at, "at")
    previous: Shift | None = None
    for piece in _ahead(schedule, at):
        continues = previous is not None and previous.end == piece.start
        if piece.start > at and not (continues and _label(previous) == _label(piece)):
            return _covering(schedule, piece.start)
        previous = piece
    return None


def next_shift_for(schedule: ScheduleSpec, who: str, after: datetime) -> Shift | None:
    """`who`'s shift in progress at `after`, else their first one after it (within a year)."""
    after = _as_utc(after, "after")
    for piece in _ahead(schedule, after):
        if piece.who == who:
            return _covering(schedule, piece.start)
    return None


def fairness(schedule: ScheduleSpec, start: datetime, end: datetime) -> dict[str, FairnessRow]:
    """Per person, time on call, shifts, and shifts touching a holiday in [start, end)."""
    lo, hi = _window(start, end)
    holidays = [window for window, _ in _holidays(schedule, lo, hi)]
    time_on: dict[str, timedelta] = {}
    shifts: dict[str, int] = {}
    on_holiday: dict[str, int] = {}
    for piece in schedule_shifts(schedule, lo, hi):
        time_on[piece.who] = time_on.get(piece.who, timedelta()) + piece.duration
        shifts[piece.who] = shifts.get(piece.who, 0) + 1
        touches = any(opens < piece.end and piece.start < closes for opens, closes in holidays)
        on_holiday[piece.who] = on_holiday.get(piece.who, 0) + int(touches)
    return {
        who: FairnessRow(who, time_on[who].total_seconds() / 3600, shifts[who], on_holiday[who])
        for who in sorted(time_on)
    }

"""When each of a person's contacts is told of a page: urgency, personal notification
rules and quiet hours (pure: no database).

- **Urgency.** A severity the policy lists as high (sev1 and sev2 unless the policy says
  otherwise) pages at high urgency; any other at low.
- **Rules.** Per person and urgency, an ordered list of (delay, contact): "ntfy at once,
  e-mail after 2 minutes". A person without rules for an urgency is told on every contact
  at once. The console is always told at once: it is the desk itself, where every page
  shows anyway. A contact named twice is told once, at its first delay.
- **Quiet hours** (in the person's own zone): a low-urgency page that arrives inside them
  reaches the person's devices only when they end (the rules' delays count from then);
  high urgency always goes through. The case still shows in every console at once.
- **Support hours** (a schedule's, in the schedule's zone): a low-urgency page to someone
  reached through that schedule outside them waits until they begin, then for the
  person's own quiet hours too; high urgency always goes through.

The outbox stops a delayed or held delivery whose case was acknowledged before it came
due; the console stops its own in the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.rules.rotations import format_hours, parse_hours
from data.domain import DEFAULT_HIGH_URGENCY, ContactKind, Urgency, parse_duration

NotifyRules = Mapping[str, Sequence[tuple[int, str]]]
"""Urgency to its ordered (delay in seconds, contact name) pairs, as stored."""


def parse_high_urgency(text: str | None) -> tuple[int, ...]:
    """A policy's stored high-urgency severities ("1,2"); None or "" means the default."""
    if not text:
        return DEFAULT_HIGH_URGENCY
    return tuple(sorted({int(part) for part in text.split(",") if part.strip()}))


def urgency_of(severity: int, high: Iterable[int] = DEFAULT_HIGH_URGENCY) -> Urgency:
    return Urgency.HIGH if severity in tuple(high) else Urgency.LOW


NOTIFY_DELAY_MAX = timedelta(days=1)


def parse_notify_delay(text: str) -> timedelta:
    """A rule's delay: ``0m`` (at once) up to ``1d``."""
    if text.strip() in ("0", "0s", "0m", "0h"):
        return timedelta(0)
    delay = parse_duration(text)
    if delay > NOTIFY_DELAY_MAX:
        raise ValueError(f"expected a delay from 0m to 1d, got {text!r}")
    return delay


def check_quiet_hours(text: str) -> str:
    """`22:00-07:00` as stored (it may wrap midnight); ValueError saying what is expected."""
    return format_hours(parse_hours(text))


def quiet_until(quiet_hours: str | None, zone: str, at: datetime) -> datetime | None:
    """When the quiet hours that `at` falls in end (UTC), or None outside them."""
    if not quiet_hours:
        return None
    start, end = parse_hours(quiet_hours)
    tz = ZoneInfo(zone)
    local = at.astimezone(tz)
    now = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= now < end
        end_day = local.date()
    else:  # wraps midnight: 22:00-07:00
        inside = now >= start or now < end
        end_day = local.date() + timedelta(days=1) if now >= start else local.date()
    if not inside:
        return None
    return _wall(datetime.combine(end_day, end), tz)


@dataclass(frozen=True, slots=True)
class SupportHours:
    """A schedule's support hours: from `start` to `end` (wrapping midnight when the end is
    earlier) on `days` (0 = Monday; None: every day; a window belongs to the day it
    starts), in `zone`."""

    start: time
    end: time
    zone: str
    days: frozenset[int] | None = None

    def begins_after(self, at: datetime) -> datetime | None:
        """When the next support window begins (UTC) if `at` is outside one, else None."""
        tz = ZoneInfo(self.zone)
        day = at.astimezone(tz).date()
        wraps = self.end <= self.start
        for offset in range(-1, 9):
            on = day + timedelta(days=offset)
            if self.days is not None and on.weekday() not in self.days:
                continue
            opens = _wall(datetime.combine(on, self.start), tz)
            closes = _wall(datetime.combine(on + timedelta(days=wraps), self.end), tz)
            if at < opens:
                return opens
            if at < closes:
                return None
        raise AssertionError("a week always holds a support day")  # days is never empty


def _wall(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall time in `tz` as UTC; one that a DST change skips counts from the change."""
    moment = wall.replace(tzinfo=tz).astimezone(UTC)
    if moment.astimezone(tz).replace(tzinfo=None) != wall:
        moment = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return moment


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    kind: str
    name: str
    """What rules call it: the team file's `name`, else its kind."""


@dataclass(frozen=True, slots=True)
class Profile:
    """What decides when a person's contacts are told, as plain values."""

    timezone: str = "UTC"
    quiet_hours: str | None = None
    rules: tuple[tuple[str, tuple[tuple[int, str], ...]], ...] = ()

    @classmethod
    def of(cls, timezone: str, quiet_hours: str | None, rules: NotifyRules | None) -> Profile:
        stored = tuple(
            sorted(
                (urgency, tuple((int(delay), str(name)) for delay, name in entries))
                for urgency, entries in (rules or {}).items()
            )
        )
        return cls(timezone, quiet_hours, stored)

    def rules_for(self, urgency: str) -> tuple[tuple[int, str], ...] | None:
        for name, entries in self.rules:
            if name == urgency:
                return entries
        return None


@dataclass(frozen=True, slots=True)
class Notice:
    """One contact to tell: when, and whether it waits (a rule's delay or quiet hours)."""

    contact_id: int
    kind: str
    due_at: datetime
    held: bool


def low_urgency_start(profile: Profile, support: SupportHours | None, now: datetime) -> datetime:
    """When a low-urgency page made `now` may start reaching the person's devices: once
    the schedule's support hours have begun and the person's quiet hours have ended."""
    start = now
    for _ in range(4):  # support hours begin inside quiet hours at most once a day
        opens = support.begins_after(start) if support is not None else None
        start = opens or start
        quiet_end = quiet_until(profile.quiet_hours, profile.timezone, start)
        start = quiet_end or start
        if opens is None and quiet_end is None:
            break
    return start


def notices(
    contacts: Sequence[Contact],
    profile: Profile,
    urgency: str,
    now: datetime,
    support: SupportHours | None = None,
) -> list[Notice]:
    """When each contact is told of a page made `now`, in the contacts' order; `support`:
    the support hours of the schedule the person was reached through, if it has them."""
    start = low_urgency_start(profile, support, now) if urgency == Urgency.LOW else now
    rules = profile.rules_for(urgency)
    delays: dict[int, int] = {}
    if rules is None:
        delays = {contact.id: 0 for contact in contacts}
    else:
        for delay, name in rules:
            for contact in contacts:
                if contact.name == name and contact.id not in delays:
                    delays[contact.id] = delay
    found: list[Notice] = []
    for contact in contacts:
        if contact.kind == ContactKind.CONSOLE:
            found.append(Notice(contact.id, contact.kind, now, False))
        elif contact.id in delays:
            due = start + timedelta(seconds=delays[contact.id])
            found.append(Notice(contact.id, contact.kind, due, due > now))
    return found

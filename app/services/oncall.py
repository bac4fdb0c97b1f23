"""Rotation and schedule specs built from the tables, for the pure math in `app.rules.rotations`.

Each loader reads what it needs in a handful of queries (never one per member or per
layer) and returns frozen specs; a stored row that does not make a valid spec raises the
spec's own ValueError, which names the rotation or schedule and the field.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from sqlmodel import Session, col, select

from app.rules.rotations import (
    HolidaySpec,
    OverrideSpec,
    RotationSpec,
    ScheduleSpec,
    parse_days,
    parse_hours,
)
from data.models import Responder
from data.oncall import (
    Holiday,
    Override,
    Rotation,
    RotationMember,
    RotationVersion,
    Schedule,
    ScheduleLayer,
)


def rotation_spec(
    row: Rotation, members: Sequence[str], versions: Sequence[RotationVersion]
) -> RotationSpec:
    """The spec of one stored rotation with its history (`versions` oldest first)."""
    earlier = None
    for version in versions:
        earlier = RotationSpec.from_text(
            name=row.name,
            timezone=version.timezone,
            shift=version.shift,
            handoff=version.handoff,
            start=version.start,
            members=version.members,
            days=version.days or None,
            hours=version.hours or None,
            since=version.since,
            offset=version.turn_offset,
            earlier=earlier,
        )
    return RotationSpec.from_text(
        name=row.name,
        timezone=row.timezone,
        shift=row.shift,
        handoff=row.handoff,
        start=row.start,
        members=members,
        days=row.days or None,
        hours=row.hours or None,
        since=row.since,
        offset=row.turn_offset,
        earlier=earlier,
    )


def rotation_versions(session: Session, ids: Collection[int]) -> dict[int, list[RotationVersion]]:
    """The earlier versions of the given rotations, oldest first, by rotation id."""
    versions: dict[int, list[RotationVersion]] = defaultdict(list)
    if ids:
        for version in session.exec(
            select(RotationVersion)
            .where(col(RotationVersion.rotation_id).in_(ids))
            .order_by(col(RotationVersion.rotation_id), col(RotationVersion.id))
        ).all():
            versions[version.rotation_id].append(version)
    return versions


def _rotation_specs(session: Session, rotations: Collection[Rotation]) -> dict[int, RotationSpec]:
    """Specs of the given rotation rows, by rotation id, members in position order."""
    ids = [row.id for row in rotations if row.id is not None]
    if not ids:
        return {}
    members: dict[int, list[str]] = defaultdict(list)
    for rotation_id, handle in session.exec(
        select(RotationMember.rotation_id, Responder.handle)
        .join(Responder, col(Responder.id) == col(RotationMember.responder_id))
        .where(col(RotationMember.rotation_id).in_(ids))
        .order_by(col(RotationMember.rotation_id), col(RotationMember.position))
    ).all():
        members[rotation_id].append(handle)
    versions = rotation_versions(session, ids)
    specs: dict[int, RotationSpec] = {}
    for row in rotations:
        assert row.id is not None
        specs[row.id] = rotation_spec(row, members[row.id], versions[row.id])
    return specs


def load_rotation(session: Session, name: str) -> RotationSpec | None:
    """The rotation called `name`, or None if there is none."""
    row = session.exec(select(Rotation).where(Rotation.name == name)).first()
    if row is None or row.id is None:
        return None
    return _rotation_specs(session, [row])[row.id]


def _schedule_specs(session: Session, schedules: Collection[Schedule]) -> list[ScheduleSpec]:
    """Specs of the given schedule rows, in the order given."""
    ids = [row.id for row in schedules if row.id is not None]
    if not ids:
        return []
    layer_rows = session.exec(
        select(ScheduleLayer)
        .where(col(ScheduleLayer.schedule_id).in_(ids))
        .order_by(col(ScheduleLayer.schedule_id), col(ScheduleLayer.position))
    ).all()
    rotation_ids = {layer.rotation_id for layer in layer_rows}
    rotations = _rotation_specs(
        session,
        session.exec(select(Rotation).where(col(Rotation.id).in_(rotation_ids))).all()
        if rotation_ids
        else [],
    )
    layers: dict[int, list[RotationSpec]] = defaultdict(list)
    for layer in layer_rows:
        layers[layer.schedule_id].append(rotations[layer.rotation_id])

    # Of two overlapping overrides the later one wins: keep them in the order they were made.
    overrides: dict[int, list[OverrideSpec]] = defaultdict(list)
    for schedule_id, handle, starts_at, ends_at in session.exec(
        select(Override.schedule_id, Responder.handle, Override.starts_at, Override.ends_at)
        .join(Responder, col(Responder.id) == col(Override.responder_id))
        .where(col(Override.schedule_id).in_(ids))
        .order_by(col(Override.id))
    ).all():
        overrides[schedule_id].append(OverrideSpec(handle, starts_at, ends_at))

    regions = {row.holiday_region.casefold() for row in schedules if row.holiday_region}
    holidays: dict[str, list[HolidaySpec]] = defaultdict(list)
    if regions:
        for holiday in session.exec(select(Holiday).order_by(col(Holiday.day))).all():
            region = holiday.region.casefold()
            if region in regions:
                holidays[region].append(HolidaySpec(holiday.day, holiday.name, holiday.region))

    cover_ids = {row.holiday_cover_id for row in schedules if row.holiday_cover_id is not None}
    covers = (
        dict(
            session.exec(
                select(Responder.id, Responder.handle).where(col(Responder.id).in_(cover_ids))
            ).all()
        )
        if cover_ids
        else {}
    )

    specs = []
    for row in schedules:
        assert row.id is not None
        wanted = row.holiday_region.casefold() if row.holiday_region else None
        specs.append(
            ScheduleSpec(
                name=row.name,
                layers=tuple(layers[row.id]),
                overrides=tuple(overrides[row.id]),
                holidays=tuple(holidays[wanted]) if wanted else (),
                holiday_region=row.holiday_region,
                holiday_cover=covers.get(row.holiday_cover_id) if row.holiday_cover_id else None,
                timezone=row.timezone,
                support_hours=parse_hours(row.support_hours) if row.support_hours else None,
                support_days=(
                    parse_days(row.support_days.split(",")) if row.support_days else None
                ),
            )
        )
    return specs


def load_schedule(session: Session, name: str) -> ScheduleSpec | None:
    """The schedule called `name` with its layers, overrides and holidays, or None."""
    row = session.exec(select(Schedule).where(Schedule.name == name)).first()
    if row is None:
        return None
    return _schedule_specs(session, [row])[0]


def load_all_schedules(session: Session) -> list[ScheduleSpec]:
    """Every schedule, by name."""
    return _schedule_specs(session, session.exec(select(Schedule).order_by(Schedule.name)).all())

"""Audience reads. Every selector takes the workspace and never returns another workspace's rows."""

import itertools
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import numpy as np
import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from accounts.models import Workspace
from audience import engagement as eng
from audience.models import Contact, ContactImport, EngagementProfile, Label, Segment, Suppression
from audience.segments import compile_rules
from common import errors
from common.timezones import is_valid_timezone


def contact_list(*, workspace: Workspace) -> QuerySet[Contact]:
    return Contact.objects.filter(workspace=workspace).prefetch_related("labels")


def label_list(*, workspace: Workspace) -> QuerySet[Label]:
    # Explicit order: Meta.ordering is not applied to a GROUP BY query, and pages need a stable order.
    return Label.objects.filter(workspace=workspace).annotate(contact_count=Count("contacts")).order_by("name", "id")


def segment_list(*, workspace: Workspace) -> QuerySet[Segment]:
    return Segment.objects.filter(workspace=workspace)


def suppression_list(*, workspace: Workspace) -> QuerySet[Suppression]:
    return Suppression.objects.filter(workspace=workspace)


def contact_import_list(*, workspace: Workspace) -> QuerySet[ContactImport]:
    return ContactImport.objects.filter(workspace=workspace)


def contact_import_get(*, workspace: Workspace, import_id: UUID) -> ContactImport:
    try:
        return contact_import_list(workspace=workspace).get(pk=import_id)
    except (ContactImport.DoesNotExist, ValueError):
        raise errors.NotFound() from None


def segment_contacts(*, workspace: Workspace, segment: Segment) -> QuerySet[Contact]:
    """The workspace's contacts matching the segment's rules, whatever their status."""
    if segment.workspace_id != workspace.id:
        raise errors.NotFound()
    return contact_list(workspace=workspace).filter(compile_rules(workspace=workspace, rules=segment.rules))


def segment_contact_count(*, workspace: Workspace, segment: Segment) -> int:
    return segment_contacts(workspace=workspace, segment=segment).count()


def _segments_by_id(*, workspace: Workspace, segments: Iterable) -> dict[UUID, Segment]:
    """Segment objects pass through; ids are loaded in one query. Unknown ids (or another workspace's)
    are left out: an include then selects nobody through them and an exclude removes nobody."""
    given = {s.id: s for s in segments if isinstance(s, Segment) and s.workspace_id == workspace.id}
    wanted = []
    for item in segments:
        if isinstance(item, Segment):
            continue
        try:
            wanted.append(UUID(str(item)))
        except ValueError:
            continue
    if wanted:
        given.update({s.id: s for s in Segment.objects.filter(workspace=workspace, id__in=wanted)})
    return given


def audience_sendable(
    *,
    workspace: Workspace,
    include_labels: Iterable[UUID | str] = (),
    exclude_labels: Iterable[UUID | str] = (),
    include_segments: Iterable[UUID | str | Segment] = (),
    exclude_segments: Iterable[UUID | str | Segment] = (),
    sendable_only: bool = True,
) -> QuerySet[Contact]:
    """Contacts selected by ANY include label or segment, minus those of any exclude label or segment,
    subscribed and not on the workspace's suppression list (with `sendable_only=False`, whatever their
    status and suppression: what a send plan compares against to warn about who is left out).

    The result is ONE SELECT (EXISTS subqueries, no joins, so no duplicates and no DISTINCT). Segment
    rules are read when this is called: one query if segments are given as ids, none for Segment objects
    or labels only. No include at all selects nobody: an empty audience never means "everyone".
    """
    include_segments, exclude_segments = list(include_segments), list(exclude_segments)
    segments = _segments_by_id(workspace=workspace, segments=include_segments + exclude_segments)

    def segment_ids(items):
        ids = []
        for item in items:
            try:
                ids.append(item.id if isinstance(item, Segment) else UUID(str(item)))
            except ValueError:
                continue
        return [i for i in ids if i in segments]

    def label_member(label_ids):
        return Exists(
            Contact.labels.through.objects.filter(
                contact_id=OuterRef("pk"), label_id__in=label_ids, label__workspace=workspace
            )
        )

    include_labels = _uuids(include_labels)
    exclude_labels = _uuids(exclude_labels)

    include = Q(pk__in=[])
    if include_labels:
        include |= Q(label_member(include_labels))
    for segment_id in segment_ids(include_segments):
        include |= compile_rules(workspace=workspace, rules=segments[segment_id].rules)

    queryset = Contact.objects.filter(workspace=workspace).filter(include)
    if sendable_only:
        queryset = queryset.filter(status=Contact.Status.SUBSCRIBED)
    if exclude_labels:
        queryset = queryset.exclude(label_member(exclude_labels))
    for segment_id in segment_ids(exclude_segments):
        # NOT EXISTS rather than NOT (rules): a rule that is NULL for a contact (missing attribute) must
        # leave that contact in, not drop it on three-valued logic.
        matching = Contact.objects.filter(pk=OuterRef("pk")).filter(
            compile_rules(workspace=workspace, rules=segments[segment_id].rules)
        )
        queryset = queryset.exclude(Exists(matching))
    if not sendable_only:
        return queryset
    suppressed = Suppression.objects.filter(workspace=workspace, email=OuterRef("email"))
    return queryset.exclude(Exists(suppressed))


def _uuids(values: Iterable) -> list[UUID]:
    result = []
    for value in values:
        try:
            result.append(UUID(str(value)))
        except ValueError:
            continue
    return result


# --- engagement (docs/decisions/030) ---------------------------------------------------------------------


def engagement_prior(*, workspace: Workspace, now: datetime) -> np.ndarray:
    """The workspace's engagement by hour of week in each contact's own local time (bucket 0 is Monday
    00:00-00:59 on the contact's clock): the prior every contact's profile is smoothed towards, once the
    planner has moved it into that contact's zone (eng.utc_prior). Local, because an audience across zones
    shares habits by the clock on the wall (breakfast, lunch, evening), not by the UTC hour: a UTC prior
    sends a contact with no history at the audience's favourite UTC hour, a poor one in most zones.

    Opens per send of the whole audience (its decayed engagement divided by its decayed exposure), so the
    hours we always sent in do not make the prior point at themselves. Read from at most STO_PRIOR_SAMPLE
    profiles in primary-key order: contact ids are random UUIDs, so that is a uniform sample, and the same
    one for the send-plan preview and the fan-out. A contact's zone is read at `now` (its UTC offset then,
    to the nearest hour); without a valid one, the workspace's."""
    engagement, exposure = np.zeros(eng.HOURS_OF_WEEK), np.zeros(eng.HOURS_OF_WEEK)
    now_us = eng.epoch_us(now)
    offsets: dict[str, int] = {}
    for values, sends, decayed_to_us, zones in _prior_chunks(workspace=workspace, chunk=1000):
        ages = np.where(decayed_to_us > 0, (now_us - decayed_to_us) / 1e6, 0.0)
        factors = eng.decay(ages)
        index: dict[str, int] = {}
        zone_of = np.fromiter((index.setdefault(z or "", len(index)) for z in zones), dtype=np.int64, count=len(zones))
        for zone, k in index.items():
            if zone not in offsets:
                offsets[zone] = eng.utc_offset_hours(zone if is_valid_timezone(zone) else workspace.timezone, now)
            rows = zone_of == k
            # Bucket h in UTC is bucket h + offset on the contact's clock.
            engagement += np.roll(factors[rows] @ values[rows].astype(np.float64), offsets[zone])
            exposure += np.roll(factors[rows] @ sends[rows].astype(np.float64), offsets[zone])
    return eng.exposure_corrected(engagement, exposure)


def profile_vector_sql(column: str) -> tuple[str, list]:
    """SQL for a stored profile vector as exactly eng.VECTOR_BYTES bytes (zeros when missing or empty),
    so a reader can view many rows' bytes as one array; with its parameters."""
    return f"CASE WHEN length({column}) = %s THEN {column} ELSE %s END", [eng.VECTOR_BYTES, eng.NO_VECTOR]


def epoch_us_sql(column: str) -> str:
    """SQL for a timestamp as int8 microseconds since the epoch, 0 when NULL (eng.epoch_us)."""
    return f"COALESCE((EXTRACT(EPOCH FROM {column}) * 1000000)::int8, 0)"


def _prior_chunks(*, workspace: Workspace, chunk: int):
    """The prior's sample as arrays: (engagement, exposure) as (n, 168) float32, decayed_to in
    microseconds since the epoch, and the contacts' timezones (a list). PostgreSQL: one query per chunk
    (keyset by contact id) whose aggregates join the chunk's vectors into one bytea each, so numpy reads
    them in place (no Python object per row)."""
    profiles = EngagementProfile.objects.filter(workspace=workspace).exclude(engagement=b"").order_by("contact_id")
    limit = settings.STO_PRIOR_SAMPLE
    if connection.vendor != "postgresql":
        rows = profiles.values_list("engagement", "exposure", "decayed_to", "contact__timezone")[:limit]
        batches = rows.iterator(chunk_size=chunk)
        while batch := list(itertools.islice(batches, chunk)):
            values, sends, decayed_to, zones = zip(*batch, strict=True)
            d_us = np.array([eng.epoch_us(d) for d in decayed_to], dtype=np.int64)
            yield eng.matrix(values).astype(eng.DTYPE), eng.matrix(sends).astype(eng.DTYPE), d_us, list(zones)
        return
    engagement, engagement_params = profile_vector_sql("q.engagement")
    exposure, exposure_params = profile_vector_sql("q.exposure")
    last, read = None, 0
    while read < limit:
        page = profiles.filter(contact_id__gt=last) if last is not None else profiles
        # The zone by primary key per row (a subquery, not a join: a join read every contact per chunk).
        zone = Subquery(Contact.objects.filter(pk=OuterRef("contact_id")).order_by().values("timezone")[:1])
        sql, params = (
            page.annotate(zone=zone)
            .values_list("contact_id", "engagement", "exposure", "decayed_to", "zone")[: min(chunk, limit - read)]
            .query.sql_with_params()
        )
        query = (
            "SELECT count(*), max(q.contact_id::text), "
            f"string_agg({engagement}, ''::bytea), string_agg({exposure}, ''::bytea), "
            f"array_agg({epoch_us_sql('q.decayed_to')}), "
            "array_agg(q.zone) "
            f"FROM ({sql}) q"
        )
        connection.ensure_connection()
        # Binary results: a bytea arrives as its bytes, not as hex text twice its size.
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(query, [*engagement_params, *exposure_params, *params], binary=True)
            n, last, values, sends, decayed_to, zones = cursor.fetchone()
        if not n:
            return
        read += n
        # Summed, so the order the aggregates read the rows in does not matter, as long as it is one order.
        yield (
            np.frombuffer(values, dtype=eng.DTYPE).reshape(n, eng.HOURS_OF_WEEK),
            np.frombuffer(sends, dtype=eng.DTYPE).reshape(n, eng.HOURS_OF_WEEK),
            np.array(decayed_to, dtype=np.int64),
            zones,
        )
        if n < chunk:
            return


def contact_engagement(*, workspace: Workspace, contact_id: UUID, now: datetime) -> dict:
    """A contact's profile as people read it: totals, the decayed and exposure-corrected 168 numbers, and
    the three best hours of week. 404 for a contact of another workspace."""
    try:
        contact = Contact.objects.filter(workspace=workspace, pk=contact_id).first()
    except (ValueError, DjangoValidationError):
        contact = None
    if contact is None:
        raise errors.NotFound()
    profile = EngagementProfile.objects.filter(workspace=workspace, contact=contact).first()
    if profile is None:
        values = np.zeros(eng.HOURS_OF_WEEK)
        opens = clicks = machine = 0
        last = None
    else:
        values = eng.exposure_corrected(eng.vector(profile.engagement)[None, :], eng.vector(profile.exposure)[None, :])
        values = values[0] * eng.decay_to([profile.decayed_to], now)[0]
        opens, clicks, machine, last = profile.opens, profile.clicks, profile.machine_opens, profile.last_engaged_at
    best = [int(h) for h in np.argsort(-values, kind="stable")[:3] if values[h] > 0]
    return {
        "contact": contact,
        "opens": opens,
        "clicks": clicks,
        "machine_opens": machine,
        "last_engaged_at": last,
        "best_hours": [{"hour_of_week": h, "score": round(float(values[h]), 4)} for h in best],
        "profile": [round(float(v), 4) for v in values],
    }

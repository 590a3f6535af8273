"""Audience reads. Every selector takes the workspace and never returns another workspace's rows."""

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from accounts.models import Workspace
from audience import engagement as eng
from audience.models import Contact, ContactImport, EngagementProfile, Label, Segment, Suppression
from audience.segments import compile_rules
from common import errors


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
    """The workspace's engagement by hour of week: the prior every contact's profile is smoothed towards.
    Opens per send of the whole audience (its decayed engagement divided by its decayed exposure), so the
    hours we always sent in do not make the prior point at themselves. Read from at most STO_PRIOR_SAMPLE
    profiles in primary-key order: contact ids are random UUIDs, so that is a uniform sample, and the same
    one for the send-plan preview and the fan-out."""
    engagement, exposure = np.zeros(eng.HOURS_OF_WEEK), np.zeros(eng.HOURS_OF_WEEK)
    rows = (
        EngagementProfile.objects.filter(workspace=workspace)
        .exclude(engagement=b"")
        .order_by("contact_id")
        .values_list("engagement", "exposure", "decayed_to")[: settings.STO_PRIOR_SAMPLE]
    )
    chunk = 5000
    batch: list = []
    for row in rows.iterator(chunk_size=chunk):
        batch.append(row)
        if len(batch) >= chunk:
            _add_profiles(batch, now, engagement, exposure)
            batch = []
    if batch:
        _add_profiles(batch, now, engagement, exposure)
    return eng.exposure_corrected(engagement, exposure)


def _add_profiles(rows: list, now: datetime, engagement: np.ndarray, exposure: np.ndarray) -> None:
    values, sends, decayed_to = zip(*rows, strict=True)
    factors = eng.decay_to(list(decayed_to), now)[:, None]
    engagement += (eng.matrix(values) * factors).sum(axis=0)
    exposure += (eng.matrix(sends) * factors).sum(axis=0)


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

"""Audience reads. Every selector takes the workspace and never returns another workspace's rows."""

from collections.abc import Iterable
from uuid import UUID

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from accounts.models import Workspace
from audience.models import Contact, ContactImport, Label, Segment, Suppression
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

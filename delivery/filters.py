"""Query-string filters of the event list (django-filter; a bad value is a 400 naming the field, never a 500).

Every filter here is served by one of Event's indexes, alone or with the workspace (docs/decisions/017);
`type`, `run_id`, `batch_id`, `since` and `until` narrow what one of those indexes finds."""

import django_filters
from django import forms

from audience.models import normalize_email
from common import errors
from common.timerules import parse_aware_instant
from delivery.models import Event


class InstantField(forms.Field):
    """An ISO 8601 instant with an offset or Z, as UTC (common.timerules); a naive one is refused."""

    def __init__(self, *, param: str, **kwargs):
        self.param = param
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_aware_instant(value=value, field=self.param)
        except errors.ValidationError as exc:
            raise forms.ValidationError(exc.details[self.param]) from None


class InstantFilter(django_filters.IsoDateTimeFilter):
    # A subclass of IsoDateTimeFilter only so the OpenAPI schema says date-time and keeps the label; the
    # parsing is InstantField's.
    field_class = InstantField


class EventFilterForm(forms.Form):
    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since is not None and until is not None and since > until:
            self.add_error("since", "since must not be after until.")
        return cleaned


class EventFilter(django_filters.FilterSet):
    # Repeat the parameter for several types (?type=opened&type=clicked); one value is one type.
    type = django_filters.MultipleChoiceFilter(
        choices=Event.Type.choices,
        distinct=False,  # one row per event already; DISTINCT would sort the whole match before paging
        label="Event type; repeat the parameter for several (type=opened&type=clicked).",
    )
    campaign_id = django_filters.UUIDFilter(field_name="campaign_id")
    run_id = django_filters.UUIDFilter(
        field_name="run_id",
        label="A campaign run (one send of a campaign). Give its campaign_id too: that narrows the search fastest.",
    )
    batch_id = django_filters.UUIDFilter(field_name="batch_id", label="A transactional request's batch.")
    message_id = django_filters.CharFilter(
        field_name="message_id",
        max_length=255,
        label="A transactional message's message_id, or a campaign message's Message-ID header (with its <>).",
    )
    email = django_filters.CharFilter(
        method="filter_email",
        max_length=254,
        label=(
            "Exact email, case-insensitive for campaign mail (stored lower-cased); a transactional recipient "
            "stored with capitals is also found as written in the request."
        ),
    )
    since = InstantFilter(
        field_name="occurred_at", lookup_expr="gte", param="since", label="Events at or after this instant."
    )
    until = InstantFilter(
        field_name="occurred_at", lookup_expr="lt", param="until", label="Events before this instant (exclusive)."
    )

    class Meta:
        model = Event
        form = EventFilterForm
        fields = ["type", "campaign_id", "run_id", "batch_id", "message_id", "email", "since", "until"]

    def filter_email(self, queryset, name, value):
        # Campaign events carry the contact's lower-cased address (decision 003), transactional ones the address
        # as the request gave it (decision 012). Matching both exactly keeps event_ws_email_idx usable.
        given = value.strip()
        return queryset.filter(email__in=sorted({normalize_email(given), given}))

"""Query-string filters of the audience lists (django-filter; a bad value is a 400, never a 500)."""

import django_filters
from django.db.models import Q

from audience.models import Contact, Label, Segment, Suppression, normalize_email


class ContactFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Contact.Status.choices)
    label = django_filters.UUIDFilter(field_name="labels__id", label="Contacts with this label id.")
    email = django_filters.CharFilter(method="filter_email", label="Exact email, case-insensitive.")
    search = django_filters.CharFilter(method="filter_search", label="Text in email, first or last name.")

    class Meta:
        model = Contact
        fields = ["status", "label", "email", "search"]

    def filter_email(self, queryset, name, value):
        # Emails are stored normalised, so an exact match on the normalised value keeps the index usable.
        return queryset.filter(email=normalize_email(value))

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(email__icontains=value) | Q(first_name__icontains=value) | Q(last_name__icontains=value)
        )


class LabelFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(field_name="name", lookup_expr="iexact")

    class Meta:
        model = Label
        fields = ["name"]


class SegmentFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(field_name="name", lookup_expr="iexact")

    class Meta:
        model = Segment
        fields = ["name"]


class SuppressionFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(method="filter_email", label="Exact email, case-insensitive.")
    reason = django_filters.ChoiceFilter(choices=Suppression.Reason.choices)

    class Meta:
        model = Suppression
        fields = ["email", "reason"]

    def filter_email(self, queryset, name, value):
        return queryset.filter(email=normalize_email(value))

"""Query-string filters of the message log (django-filter; a bad value is a 400, never a 500)."""

import django_filters

from transactional.models import TransactionalMessage


class TransactionalMessageFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=TransactionalMessage.Status.choices)
    priority = django_filters.ChoiceFilter(choices=TransactionalMessage.Priority.choices)
    batch_id = django_filters.UUIDFilter(field_name="batch_id")
    customer_reference = django_filters.CharFilter(field_name="customer_reference")
    to = django_filters.CharFilter(field_name="to_email", lookup_expr="iexact", label="Recipient address.")

    class Meta:
        model = TransactionalMessage
        fields = ["status", "priority", "batch_id", "customer_reference", "to"]

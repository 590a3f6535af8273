import pytest
from django.db import IntegrityError

from audience.models import Label
from common import errors
from common.db import unique_or_400


def test_a_unique_violation_becomes_a_400_naming_the_field(workspace):
    Label.objects.create(workspace=workspace, name="vip")
    with pytest.raises(errors.ValidationError) as caught, unique_or_400("name", "taken"):
        Label.objects.create(workspace=workspace, name="vip")
    assert caught.value.details == {"name": ["taken"]}
    assert Label.objects.filter(workspace=workspace).count() == 1


def test_any_other_integrity_error_is_not_reported_as_a_duplicate(workspace):
    with pytest.raises(IntegrityError), unique_or_400("name", "taken"):
        Label.objects.create(workspace=workspace, name=None)


# --- bulk_update_by_pk --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bulk_update_by_pk_writes_each_rows_own_values_and_leaves_other_fields_and_rows(workspace):
    from datetime import UTC, datetime

    from audience.models import EngagementProfile
    from common.db import bulk_update_by_pk
    from tests.factories import ContactFactory

    a, b, untouched = (
        EngagementProfile.objects.create(contact=ContactFactory(workspace=workspace), workspace=workspace, sends=7)
        for _ in range(3)
    )
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    a.engagement, a.opens, a.last_engaged_at = b"\x00\x01\xff", 3, at
    b.engagement, b.opens, b.last_engaged_at = b"", 0, None

    assert bulk_update_by_pk(EngagementProfile, [a, b], ["engagement", "opens", "last_engaged_at"]) == 2

    rows = {p.pk: p for p in EngagementProfile.objects.all()}
    assert (bytes(rows[a.pk].engagement), rows[a.pk].opens, rows[a.pk].last_engaged_at) == (b"\x00\x01\xff", 3, at)
    assert (bytes(rows[b.pk].engagement), rows[b.pk].opens, rows[b.pk].last_engaged_at) == (b"", 0, None)
    assert [rows[p.pk].sends for p in (a, b, untouched)] == [7, 7, 7]
    assert rows[untouched.pk].last_engaged_at is None

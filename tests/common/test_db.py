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

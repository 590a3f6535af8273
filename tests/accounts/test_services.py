from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.selectors import sending_domain_is_verified
from accounts.services import api_key_create, sending_domain_mark_verified
from common import errors
from tests.factories import SendingDomainFactory

pytestmark = pytest.mark.django_db


def test_mark_verified_is_the_admin_override(workspace):
    domain = SendingDomainFactory(workspace=workspace)
    domain = sending_domain_mark_verified(workspace=workspace, domain_id=domain.pk)
    assert domain.verified is True
    assert domain.verified_by == "admin"
    assert domain.verified_at is not None


def test_mark_verified_of_another_workspace_domain_is_not_found(workspace, other_workspace):
    domain = SendingDomainFactory(workspace=other_workspace)
    with pytest.raises(errors.NotFound):
        sending_domain_mark_verified(workspace=workspace, domain_id=domain.pk)
    domain.refresh_from_db()
    assert domain.verified is False


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("news@example.com", True),
        ("News@EXAMPLE.COM", True),
        ("news@sub.example.com", False),
        ("news@other.com", False),
        ("not-an-email", False),
        ("", False),
    ],
)
def test_sending_domain_is_verified_matches_the_email_domain(workspace, email, expected):
    SendingDomainFactory(workspace=workspace, domain="example.com", verified=True)
    assert sending_domain_is_verified(workspace=workspace, email=email) is expected


def test_unverified_domain_does_not_count(workspace):
    SendingDomainFactory(workspace=workspace, domain="example.com", verified=False)
    assert sending_domain_is_verified(workspace=workspace, email="news@example.com") is False


def test_another_workspace_verified_domain_does_not_count(workspace, other_workspace):
    SendingDomainFactory(workspace=other_workspace, domain="example.com", verified=True)
    assert sending_domain_is_verified(workspace=workspace, email="news@example.com") is False


def test_internationalised_email_domain_matches_its_idna_form(workspace):
    SendingDomainFactory(workspace=workspace, domain="xn--bcher-kva.example", verified=True)
    assert sending_domain_is_verified(workspace=workspace, email="info@bücher.example") is True


def test_a_key_cannot_be_created_already_expired(workspace):
    with pytest.raises(errors.ValidationError) as raised:
        api_key_create(workspace=workspace, expires_at=timezone.now() - timedelta(seconds=1))
    assert "expires_at" in raised.value.details
    assert not ApiKey.objects.exists()

from datetime import UTC, datetime, timedelta

import pytest

from transactional.models import TransactionalMessage
from transactional.services import transactional_send

from .conftest import FROM

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.org", "pw")
    client.force_login(user)
    return client


def accept(workspace, **extra):
    return transactional_send(
        workspace=workspace,
        priority="high",
        sender={"email": FROM},
        to=[{"email": "a@example.org"}],
        subject="Reset",
        text="Link",
        **extra,
    ).message_ids[0]


def test_admin_log_and_message_pages_render(staff, workspace, domain):
    message_id = accept(workspace)

    assert staff.get("/admin/transactional/transactionalmessage/").status_code == 200
    assert staff.get(f"/admin/transactional/transactionalmessage/{message_id}/change/").status_code == 200


def test_admin_cancel_action_cancels_only_scheduled_messages(staff, workspace, domain):
    scheduled = accept(workspace, scheduled_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    immediate = accept(workspace)

    staff.post(
        "/admin/transactional/transactionalmessage/",
        {"action": "cancel_scheduled", "_selected_action": [str(scheduled), str(immediate)]},
    )

    assert TransactionalMessage.objects.get(id=scheduled).status == "cancelled"
    assert TransactionalMessage.objects.get(id=immediate).status == "queued"

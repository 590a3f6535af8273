"""GET /api/v1/contacts/{id}/engagement: what Send Time Optimization has learned about one contact."""

from datetime import UTC, datetime

import time_machine

from delivery.services import engagement_import
from tests.factories import ContactFactory

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def history(contact, *instants: str, kind: str = "opened", agent: str = "Mozilla/5.0 (Windows NT 10.0) Firefox/140"):
    rows = [{"email": contact.email, "type": kind, "occurred_at": at, "user_agent": agent} for at in instants]
    engagement_import(workspace_id=contact.workspace_id, rows=rows, now=NOW)


@time_machine.travel(NOW, tick=False)
def test_the_engagement_of_a_contact_lists_counts_best_hours_and_the_profile(api, workspace):
    contact = ContactFactory(workspace=workspace)
    history(contact, "2026-06-09T09:10:00Z", "2026-06-02T09:40:00Z", "2026-06-03T18:00:00Z")  # Tue 09, Wed 18
    history(contact, "2026-06-08T07:00:00Z", kind="clicked")  # Mon 07
    history(contact, "2026-06-09T10:00:00Z", agent="Mozilla/5.0")  # Apple's prefetch

    body = api.get(f"/api/v1/contacts/{contact.id}/engagement").json()

    assert (body["opens"], body["clicks"], body["machine_opens"]) == (3, 1, 1)
    assert body["last_engaged_at"] == "2026-06-09T09:10:00Z"
    assert [h["hour_of_week"] for h in body["best_hours"]] == [7, 24 + 9, 2 * 24 + 18]
    assert len(body["profile"]) == 168 and body["profile"][10] == 0


def test_a_contact_without_history_has_an_empty_profile(api, workspace):
    contact = ContactFactory(workspace=workspace)

    body = api.get(f"/api/v1/contacts/{contact.id}/engagement").json()

    assert body == {
        "opens": 0,
        "clicks": 0,
        "machine_opens": 0,
        "last_engaged_at": None,
        "best_hours": [],
        "profile": [0.0] * 168,
    }


def test_another_workspaces_contact_is_not_found(other_api, workspace):
    contact = ContactFactory(workspace=workspace)

    response = other_api.get(f"/api/v1/contacts/{contact.id}/engagement")

    assert (response.status_code, response.json()["error"]["code"]) == (404, "RESOURCE_NOT_FOUND")

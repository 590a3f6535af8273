import pytest

from tests.metrics_text import family_names, scrape

pytestmark = pytest.mark.django_db


def test_metrics_lists_each_family_once_with_queue_depths_and_due_work_of_both_kinds(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    names = family_names(response.content.decode())
    assert len(names) == len(set(names))
    found = scrape(client)
    for queue in ("bulk", "tx_high", "tx_low"):
        assert ("mailsched_due_unclaimed", ("queue", queue)) in found
    for queue in ("tx_high", "tx_low", "bulk", "default", "imports"):
        assert ("mailsched_queue_depth", ("queue", queue)) in found


def test_metrics_with_a_token_set_refuses_a_scrape_without_it(client, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200

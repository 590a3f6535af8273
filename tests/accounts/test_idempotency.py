"""Idempotency-Key on every POST of the API (accounts.api.WorkspaceApiMixin, docs/decisions/023), on real
PostgreSQL: replays, refusals, concurrent duplicates, tenancy and expiry."""

import io
import threading
from datetime import UTC, datetime, timedelta

import kombu
import kombu.exceptions
import pytest
import time_machine
from django.db import transaction
from django.db.models.signals import post_save
from django.test.client import encode_multipart
from rest_framework.test import APIClient

from accounts.models import IdempotencyRecord
from accounts.services import api_key_create
from accounts.tasks import idempotency_records_expire
from audience.models import ContactImport, Label
from campaigns.models import Campaign
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    IdempotencyRecordFactory,
    LabelFactory,
    SendingDomainFactory,
)
from tests.threads import in_background, run_threads
from tests.transactional.conftest import body as transactional_body
from tests.transactional.conftest import purge_queues, queue_length
from transactional.models import TransactionalMessage
from transactional.services import transactional_message_send

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
KEY = "order-4711-welcome"
CAMPAIGN = {"name": "Spring sale", "subject": "Hi {{ first_name }}", "html": "<p>Hi</p>"}


def post(client, url: str, data: dict, key: str | None = KEY, **extra):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(url, data, format="json", **headers, **extra)


def replayed(response) -> bool:
    return response.get("Idempotent-Replayed") == "true"


def error_code(response) -> str:
    return response.json()["error"]["code"]


def new_client(workspace) -> APIClient:
    _, raw = api_key_create(workspace=workspace)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


# --- replay ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_campaign_create_sent_twice_with_one_key_creates_one_campaign_and_replays_the_answer(api):
    first = post(api, "/api/v1/campaigns", CAMPAIGN)
    second = post(api, "/api/v1/campaigns", CAMPAIGN)

    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert (replayed(first), replayed(second)) == (False, True)
    assert Campaign.objects.count() == 1


@pytest.mark.django_db
def test_transactional_send_sent_twice_with_one_key_hands_one_message_to_smtp(
    api, workspace, sink, django_capture_on_commit_callbacks
):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    purge_queues()
    with django_capture_on_commit_callbacks(execute=True):
        first = post(api, "/api/v1/transactional?priority=high", transactional_body())
        second = post(api, "/api/v1/transactional?priority=high", transactional_body())

    assert first.status_code == second.status_code == 202
    assert second.json() == first.json() and replayed(second)
    assert TransactionalMessage.objects.count() == 1
    assert queue_length("tx_high") == 1  # one send task, not two
    for message in TransactionalMessage.objects.all():  # what the workers would run
        transactional_message_send(message_id=message.id)
    assert len(sink.messages) == 1
    purge_queues()


@pytest.mark.django_db
def test_a_replay_does_not_run_the_action_again(api, workspace):
    label = LabelFactory(workspace=workspace, name="customers")
    ContactFactory.create_batch(2, workspace=workspace, labels=[label])
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    campaign = CampaignFactory(workspace=workspace, audience={"include_labels": [str(label.id)]})

    first = post(api, f"/api/v1/campaigns/{campaign.pk}/send", {})
    second = post(api, f"/api/v1/campaigns/{campaign.pk}/send", {})

    assert first.status_code == 200
    # Without the key the second send would be 409 CAMPAIGN_NOT_SENDABLE: it is the first answer again.
    assert second.status_code == 200 and second.content == first.content
    assert campaign.runs.count() == 1


@pytest.mark.django_db
def test_a_client_error_is_kept_and_replayed_too(api):
    first = post(api, "/api/v1/labels", {"name": ""})
    second = post(api, "/api/v1/labels", {"name": ""})

    assert first.status_code == second.status_code == 400
    assert second.content == first.content and replayed(second)


@pytest.mark.django_db
def test_requests_without_a_key_are_not_deduplicated(api):
    post(api, "/api/v1/campaigns", CAMPAIGN, key=None)
    post(api, "/api/v1/campaigns", CAMPAIGN, key=None)

    assert Campaign.objects.count() == 2
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_the_key_is_ignored_on_other_methods_than_post(api, workspace):
    label = LabelFactory(workspace=workspace, name="old")

    first = api.patch(f"/api/v1/labels/{label.pk}", {"name": "new"}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
    second = api.patch(f"/api/v1/labels/{label.pk}", {"name": "newer"}, format="json", HTTP_IDEMPOTENCY_KEY=KEY)

    assert (first.status_code, second.status_code) == (200, 200)
    assert Label.objects.get(pk=label.pk).name == "newer"
    assert not IdempotencyRecord.objects.exists()


# --- another request with the same key ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_422_and_does_nothing(api):
    post(api, "/api/v1/campaigns", CAMPAIGN)
    response = post(api, "/api/v1/campaigns", {**CAMPAIGN, "name": "Summer sale"})

    assert response.status_code == 422
    assert error_code(response) == "IDEMPOTENCY_KEY_REUSED"
    assert list(Campaign.objects.values_list("name", flat=True)) == ["Spring sale"]


@pytest.mark.django_db
def test_the_same_key_on_another_endpoint_is_422(api):
    post(api, "/api/v1/labels", {"name": "customers"})
    response = post(api, "/api/v1/segments", {"name": "customers"})

    assert response.status_code == 422
    assert error_code(response) == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.django_db
def test_the_same_key_from_a_sandbox_key_is_another_request(api, sandbox_api, workspace):
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    post(sandbox_api, "/api/v1/transactional?priority=high", transactional_body())
    response = post(api, "/api/v1/transactional?priority=high", transactional_body())

    # Replaying the sandbox's "accepted, not sent" to the live key would silently send nothing.
    assert response.status_code == 422
    assert error_code(response) == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.django_db
def test_another_api_key_of_the_same_workspace_shares_the_keys(api, workspace):
    first = post(api, "/api/v1/campaigns", CAMPAIGN)
    second = post(new_client(workspace), "/api/v1/campaigns", CAMPAIGN)

    assert second.content == first.content and replayed(second)
    assert Campaign.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_per_workspace(api, other_api, workspace, other_workspace):
    first = post(api, "/api/v1/campaigns", CAMPAIGN)
    second = post(other_api, "/api/v1/campaigns", {**CAMPAIGN, "name": "Other"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert not replayed(second)
    assert Campaign.objects.filter(workspace=workspace).count() == 1
    assert Campaign.objects.filter(workspace=other_workspace).count() == 1


# --- the key itself -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_key_over_255_characters_is_400_and_does_nothing(api):
    response = post(api, "/api/v1/campaigns", CAMPAIGN, key="k" * 256)

    assert response.status_code == 400
    assert error_code(response) == "VALIDATION_ERROR"
    assert "Idempotency-Key" in response.json()["error"]["details"]
    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_a_key_of_255_characters_is_accepted(api):
    assert post(api, "/api/v1/campaigns", CAMPAIGN, key="k" * 255).status_code == 201
    assert IdempotencyRecord.objects.get().key == "k" * 255


@pytest.mark.django_db
def test_a_blank_key_is_400(api):
    response = post(api, "/api/v1/campaigns", CAMPAIGN, key="  ")

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["details"]


@pytest.mark.django_db
def test_an_unauthenticated_request_claims_no_key(anon):
    assert post(anon, "/api/v1/campaigns", CAMPAIGN).status_code == 401
    assert not IdempotencyRecord.objects.exists()


# --- what is kept -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_503_is_not_kept_so_the_retry_with_the_key_runs(api, monkeypatch):
    def refuse(*args, **kwargs):  # the broker is the outside thing: publishing fails as with Redis down
        raise kombu.exceptions.OperationalError("Error 111 connecting to redis. Connection refused.")

    upload = {"file": io.BytesIO(b"email\nana@example.org\n")}
    upload["file"].name = "contacts.csv"
    with monkeypatch.context() as patched:
        patched.setattr(kombu.Producer, "publish", refuse)
        first = api.post("/api/v1/contacts/import", upload, format="multipart", HTTP_IDEMPOTENCY_KEY=KEY)
    upload["file"].seek(0)
    second = api.post("/api/v1/contacts/import", upload, format="multipart", HTTP_IDEMPOTENCY_KEY=KEY)

    assert (first.status_code, second.status_code) == (503, 202)
    assert not replayed(second)
    assert ContactImport.objects.filter(status=ContactImport.Status.PENDING).count() == 1
    purge_queues()


@pytest.mark.django_db
def test_the_same_upload_with_another_multipart_boundary_is_a_replay(api):
    def upload(boundary: str):
        payload = io.BytesIO(b"email\nana@example.org\n")
        payload.name = "contacts.csv"
        return api.post(
            "/api/v1/contacts/import",
            encode_multipart(boundary, {"file": payload}),
            content_type=f"multipart/form-data; boundary={boundary}",
            HTTP_IDEMPOTENCY_KEY=KEY,
        )

    first = upload("----client-boundary-1f3a")
    second = upload("----client-boundary-9c2e")

    assert first.status_code == second.status_code == 202
    assert second.content == first.content and replayed(second)
    assert ContactImport.objects.count() == 1
    purge_queues()


# --- concurrency ----------------------------------------------------------------------------------------


def _ready_campaign(workspace) -> Campaign:
    label = LabelFactory(workspace=workspace)
    ContactFactory.create_batch(2, workspace=workspace, labels=[label])
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    return CampaignFactory(workspace=workspace, audience={"include_labels": [str(label.id)]})


@pytest.mark.django_db(transaction=True)
def test_a_request_while_the_first_with_the_key_still_runs_is_409_then_replays(workspace, settings):
    settings.CAMPAIGN_LOCK_TIMEOUT_MS = 20_000
    campaign = _ready_campaign(workspace)
    url = f"/api/v1/campaigns/{campaign.pk}/send"
    locked, release, claimed = threading.Event(), threading.Event(), threading.Event()
    outcome = {}

    def another_change_of_the_campaign():  # holds the campaign's row lock, as a slow transition would
        with transaction.atomic():
            Campaign.objects.select_for_update().get(pk=campaign.pk)
            locked.set()
            release.wait(30)

    def first_request():
        outcome["first"] = post(new_client(workspace), url, {})

    def on_claim(sender, instance, created, **kwargs):  # observes the claim's commit; changes nothing
        if created:
            transaction.on_commit(claimed.set)

    post_save.connect(on_claim, sender=IdempotencyRecord, weak=False, dispatch_uid="test-claim")
    try:
        with in_background(another_change_of_the_campaign, stop=release.set):
            assert locked.wait(30)
            with in_background(first_request, stop=release.set):
                assert claimed.wait(30)
                second = post(new_client(workspace), url, {})
    finally:
        post_save.disconnect(sender=IdempotencyRecord, dispatch_uid="test-claim")
    third = post(new_client(workspace), url, {})

    assert second.status_code == 409
    assert error_code(second) == "IDEMPOTENCY_KEY_IN_USE"
    assert outcome["first"].status_code == 200
    assert third.content == outcome["first"].content and replayed(third)
    assert campaign.runs.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_run_once(workspace):
    clients = [new_client(workspace) for _ in range(6)]
    for round_ in range(5):
        key = f"concurrent-{round_}"
        body = {**CAMPAIGN, "name": f"Campaign {round_}"}
        calls = [lambda c=c, b=body, k=key: post(c, "/api/v1/campaigns", b, key=k) for c in clients]
        responses = run_threads(*calls)

        firsts = [r for r in responses if r.status_code == 201 and not replayed(r)]
        others = [r for r in responses if r not in firsts]
        assert len(firsts) == 1, [(r.status_code, r.content[:200]) for r in responses]
        for response in others:
            if response.status_code == 409:
                assert error_code(response) == "IDEMPOTENCY_KEY_IN_USE"
            else:
                assert response.status_code == 201 and replayed(response) and response.content == firsts[0].content
        assert Campaign.objects.filter(name=body["name"]).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_retryable_409_is_not_kept_so_the_retry_with_the_key_runs(workspace, settings):
    settings.CAMPAIGN_LOCK_TIMEOUT_MS = 50
    campaign = _ready_campaign(workspace)
    url = f"/api/v1/campaigns/{campaign.pk}/send"
    client = new_client(workspace)
    locked, release = threading.Event(), threading.Event()

    def another_change_of_the_campaign():
        with transaction.atomic():
            Campaign.objects.select_for_update().get(pk=campaign.pk)
            locked.set()
            release.wait(30)

    with in_background(another_change_of_the_campaign, stop=release.set):
        assert locked.wait(30)
        [blocked] = run_threads(lambda: post(client, url, {}))
    retried = post(client, url, {})

    assert error_code(blocked) == "CAMPAIGN_TRANSITION_IN_PROGRESS"
    assert retried.status_code == 200 and not replayed(retried)


# --- expiry ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_key_is_replayed_until_24_hours_have_passed(api):
    with time_machine.travel(NOW, tick=False):
        first = post(api, "/api/v1/campaigns", CAMPAIGN)
    with time_machine.travel(NOW + timedelta(hours=24) - timedelta(seconds=1), tick=False):
        second = post(api, "/api/v1/campaigns", CAMPAIGN)

    assert second.content == first.content and replayed(second)
    assert Campaign.objects.count() == 1


@pytest.mark.django_db
def test_after_24_hours_the_key_is_new_again(api):
    with time_machine.travel(NOW, tick=False):
        post(api, "/api/v1/campaigns", CAMPAIGN)
    with time_machine.travel(NOW + timedelta(hours=24), tick=False):
        again = post(api, "/api/v1/campaigns", {**CAMPAIGN, "name": "Summer sale"})

    assert again.status_code == 201 and not replayed(again)
    assert Campaign.objects.count() == 2


@pytest.mark.django_db
def test_an_abandoned_claim_is_taken_over_by_the_next_request(api, workspace, settings):
    # The request that claimed the key died (a killed worker) and never answered.
    with time_machine.travel(NOW, tick=False):
        first = post(api, "/api/v1/campaigns", CAMPAIGN)
        IdempotencyRecord.objects.update(status=IdempotencyRecord.Status.IN_PROGRESS, response_status=None)
        Campaign.objects.all().delete()
        still_running = post(api, "/api/v1/campaigns", CAMPAIGN)
    with time_machine.travel(NOW + settings.IDEMPOTENCY_ABANDONED_AFTER, tick=False):
        taken_over = post(api, "/api/v1/campaigns", CAMPAIGN)

    assert first.status_code == 201
    assert error_code(still_running) == "IDEMPOTENCY_KEY_IN_USE"
    assert taken_over.status_code == 201 and not replayed(taken_over)
    assert IdempotencyRecord.objects.get().status == IdempotencyRecord.Status.DONE


@pytest.mark.django_db
def test_the_periodic_cleanup_deletes_expired_records_only(workspace):
    with time_machine.travel(NOW, tick=False):
        expired = IdempotencyRecordFactory(workspace=workspace, expires_at=NOW - timedelta(seconds=1))
        live = IdempotencyRecordFactory(workspace=workspace, expires_at=NOW + timedelta(hours=1))
        idempotency_records_expire()

    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [live.pk]
    assert not IdempotencyRecord.objects.filter(pk=expired.pk).exists()

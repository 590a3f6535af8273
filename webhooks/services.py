"""Outbound webhooks: endpoints, the tick that turns events into messages, and the delivery of a batch
(docs/architecture.md#webhooks, docs/decisions/040).

Events are written in bulk by the send path (docs/decisions/015), so nothing here runs per event. A tick on
the `default` queue reads each endpoint's new events after its cursor, writes one `WebhookMessage` per
subscribed event, and enqueues at most one delivery task per endpoint; that task sends a batch, then enqueues
the next one (paced to the endpoint's rate) while messages are due. However many events a campaign makes,
the queue holds at most one webhook task per endpoint, and a receiver gets no more than it answers.
"""

import json
import time
from datetime import datetime, timedelta
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.utils import timezone

from accounts.models import Workspace
from common import errors
from common.timerules import to_utc_iso
from delivery.models import Event
from delivery.services import event_record
from webhooks import http, signing, ssrf
from webhooks.models import EventWatermark, WebhookAttempt, WebhookEndpoint, WebhookMessage

DELIVER_TASK = "webhooks.tasks.deliver"
DELIVER_QUEUE = "default"

# Standard Webhooks' recommended schedule (also Svix's): about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, then every
# 10 h until the message's retry window (WEBHOOK_RETRY_WINDOW_HOURS, 3 days) is spent.
RETRY_SCHEDULE_SECONDS = (5, 300, 1800, 7200, 18000, 36000)

S = WebhookMessage.Status
E = Event.Type
CAMPAIGN_TYPES = [t for t in E.values if t.startswith("campaign.")]
EMAIL_TYPES = [f"email.{t}" for t in E.values if "." not in t]
WILDCARDS = {"*": EMAIL_TYPES + CAMPAIGN_TYPES, "email.*": EMAIL_TYPES, "campaign.*": CAMPAIGN_TYPES}
SUBSCRIBABLE = [*WILDCARDS, *EMAIL_TYPES, *CAMPAIGN_TYPES]


class WebhookEndpointDisabled(errors.Conflict):
    code = "WEBHOOK_ENDPOINT_DISABLED"
    default_message = "The endpoint is disabled; enable it (PATCH enabled=true) to send to it."


def webhook_type(event_type: str) -> str:
    """The dotted type integrators see: `sent` is `email.sent`, campaign lifecycle types stay as they are."""
    return event_type if "." in event_type else f"email.{event_type}"


def _event_types(patterns: list[str]) -> list[str]:
    """The event table's types an endpoint's subscription covers."""
    wanted: set[str] = set()
    for pattern in patterns:
        wanted.update(WILDCARDS.get(pattern, [pattern]))
    return sorted(t.removeprefix("email.") for t in wanted)


def _check_event_types(event_types: list[str]) -> list[str]:
    unknown = [t for t in event_types if t not in SUBSCRIBABLE]
    if unknown:
        raise errors.ValidationError.for_field(
            "event_types", f"Unknown event type(s): {', '.join(unknown)}. Use {', '.join(SUBSCRIBABLE)}."
        )
    if not event_types:
        raise errors.ValidationError.for_field("event_types", "Give at least one event type, or '*'.")
    return list(dict.fromkeys(event_types))


def _check_url(url: str) -> str:
    try:
        ssrf.check(url)
    except ssrf.UnsafeUrl as exc:
        raise errors.ValidationError.for_field("url", str(exc)) from None
    return url


# --- endpoints -------------------------------------------------------------------------------------------


def webhook_endpoint_create(
    *, workspace: Workspace, url: str, event_types: list[str], description: str = "", enabled: bool = True
) -> WebhookEndpoint:
    """A new endpoint gets the events that happen from now on, not the workspace's history."""
    endpoint = WebhookEndpoint.objects.create(
        workspace=workspace,
        url=_check_url(url),
        event_types=_check_event_types(event_types),
        description=description,
        secret=signing.new_secret(),
        cursor=Event.objects.aggregate(m=Max("id"))["m"] or 0,
        status=WebhookEndpoint.Status.ENABLED if enabled else WebhookEndpoint.Status.DISABLED,
        disabled_reason="" if enabled else "Created disabled.",
    )
    return endpoint


def webhook_endpoint_update(*, workspace: Workspace, instance: WebhookEndpoint, **fields) -> WebhookEndpoint:
    endpoint = instance
    if endpoint.workspace_id != workspace.id:
        raise errors.NotFound()
    if "url" in fields:
        endpoint.url = _check_url(fields["url"])
    if "event_types" in fields:
        endpoint.event_types = _check_event_types(fields["event_types"])
    if "description" in fields:
        endpoint.description = fields["description"]
    if "enabled" in fields:
        if fields["enabled"] and endpoint.status == WebhookEndpoint.Status.DISABLED:
            endpoint.status = WebhookEndpoint.Status.ENABLED
            endpoint.disabled_reason, endpoint.disabled_at = "", None
            endpoint.failure_streak, endpoint.failing_since, endpoint.retry_at = 0, None, None
        elif not fields["enabled"] and endpoint.status == WebhookEndpoint.Status.ENABLED:
            endpoint.status = WebhookEndpoint.Status.DISABLED
            endpoint.disabled_reason, endpoint.disabled_at = "Disabled through the API.", timezone.now()
    endpoint.save()
    return endpoint


def webhook_endpoint_delete(*, workspace: Workspace, instance: WebhookEndpoint) -> None:
    WebhookEndpoint.objects.filter(workspace=workspace, pk=instance.pk).delete()


def _endpoint(*, workspace: Workspace, endpoint_id: UUID) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(workspace=workspace, pk=endpoint_id).first()
    if endpoint is None:
        raise errors.NotFound()
    if endpoint.status != WebhookEndpoint.Status.ENABLED:
        raise WebhookEndpointDisabled()
    return endpoint


def webhook_endpoint_test(*, workspace: Workspace, endpoint_id: UUID) -> WebhookMessage:
    """Queue a `webhook.test` message for the endpoint, sent at once by a worker, signed like any other."""
    endpoint = _endpoint(workspace=workspace, endpoint_id=endpoint_id)
    now = timezone.now()
    webhook_id = f"test_{int(time.time() * 1000)}_{endpoint.pk.hex[:8]}"
    with transaction.atomic():
        message = WebhookMessage.objects.create(
            endpoint=endpoint,
            webhook_id=webhook_id,
            type="webhook.test",
            payload={
                "id": webhook_id,
                "type": "webhook.test",
                "created_at": to_utc_iso(now),
                "data": {"webhook_endpoint_id": str(endpoint.pk)},
            },
            next_attempt_at=now,
            created_at=now,
            retry_until=now + _retry_window(),
            next_trigger=WebhookAttempt.Trigger.TEST,
        )
        _open_circuit_for_operator(endpoint)
    return message


def webhook_attempt_replay(*, workspace: Workspace, endpoint_id: UUID, attempt_id: UUID) -> WebhookMessage:
    """Send the message of an attempt again, now, with the same `webhook-id` and body, whatever happened to
    it before (delivered, given up, waiting for a retry). The retry window starts again."""
    endpoint = _endpoint(workspace=workspace, endpoint_id=endpoint_id)
    attempt = WebhookAttempt.objects.filter(endpoint=endpoint, pk=attempt_id).select_related("message").first()
    if attempt is None:
        raise errors.NotFound()
    now = timezone.now()
    with transaction.atomic():
        WebhookMessage.objects.filter(pk=attempt.message_id).update(
            status=S.PENDING, next_attempt_at=now, retry_until=now + _retry_window(),
            next_trigger=WebhookAttempt.Trigger.REPLAY,
        )
        _open_circuit_for_operator(endpoint)
    attempt.message.refresh_from_db()
    return attempt.message


def _open_circuit_for_operator(endpoint: WebhookEndpoint) -> None:
    """An operator's test or replay goes now, even while the endpoint is backing off after failures."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(retry_at=None)
    transaction.on_commit(lambda: _kick(timezone.now(), endpoint_ids=[endpoint.pk]))


# --- the tick ------------------------------------------------------------------------------------------


def webhook_dispatch_due(*, now: datetime | None = None) -> int:
    """Beat's tick: move every endpoint's cursor over the settled events, writing the messages it subscribed
    to, then enqueue a delivery task for each endpoint with due messages and none in flight. Two ticks never
    overlap (the watermark row is locked, the second one skips). Returns how many messages it wrote."""
    now = now or timezone.now()
    written = 0
    with transaction.atomic():
        watermark = _lock_watermark()
        if watermark is None:
            return 0
        settled = _advance_watermark(watermark, now)
        endpoints = WebhookEndpoint.objects.filter(status=WebhookEndpoint.Status.ENABLED, cursor__lt=settled)
        for endpoint in endpoints:
            written += _materialize(endpoint, settled=settled, now=now)
    _kick(now)
    return written


def _lock_watermark() -> EventWatermark | None:
    for _ in range(2):
        row = EventWatermark.objects.select_for_update(skip_locked=True).filter(pk=1).first()
        if row is not None:
            return row
        if EventWatermark.objects.filter(pk=1).exists():
            return None  # another tick holds it
        try:
            with transaction.atomic():
                EventWatermark.objects.create(pk=1)
        except IntegrityError:
            pass
    return None


def _advance_watermark(watermark: EventWatermark, now: datetime) -> int:
    """The highest event id below which no event can still appear (docs/decisions/040).

    SQLite has one writer at a time, so ids become visible in order: the largest is settled. PostgreSQL hands
    out ids before commit, so a larger id can be visible while a smaller one is still in an open
    transaction. The largest id seen at one tick is settled once every transaction of this database that was
    open just after it was read has ended, or after WEBHOOK_SETTLE_MAX_SECONDS, so a transaction left open
    delays webhooks by at most that long. (The cluster-wide snapshot xmin would do too, but any long
    transaction in another database of the server holds it back.)"""
    if connection.vendor != "postgresql":
        top = Event.objects.aggregate(m=Max("id"))["m"] or 0
        watermark.settled_id = max(watermark.settled_id, top)
        watermark.save(update_fields=["settled_id"])
        return watermark.settled_id
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {Event._meta.db_table}")
        (top,) = cursor.fetchone()
        # Read after the max: a transaction holding a smaller, invisible id is still open now, so it is listed.
        cursor.execute(
            "SELECT backend_xid::text FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        )
        open_xids = sorted(row[0] for row in cursor.fetchall())
    patience = timedelta(seconds=settings.WEBHOOK_SETTLE_MAX_SECONDS)
    if watermark.pending_at is not None and (
        not set(watermark.pending_xids) & set(open_xids) or now - watermark.pending_at >= patience
    ):
        watermark.settled_id = max(watermark.settled_id, watermark.pending_id)
        watermark.pending_at = None
    if watermark.pending_at is None:
        watermark.pending_id, watermark.pending_xids, watermark.pending_at = top, open_xids, now
    watermark.save()
    return watermark.settled_id


def _materialize(endpoint: WebhookEndpoint, *, settled: int, now: datetime) -> int:
    """Messages for the endpoint's subscribed events after its cursor, at most WEBHOOK_MATERIALIZE_PER_TICK
    events read; the cursor moves over what was read, matching or not."""
    window = Event.objects.filter(workspace_id=endpoint.workspace_id, id__gt=endpoint.cursor, id__lte=settled)
    limit = settings.WEBHOOK_MATERIALIZE_PER_TICK
    last = window.order_by("id").values_list("id", flat=True)[limit - 1 : limit]
    upper = last[0] if last else settled
    events = window.filter(id__lte=upper, type__in=_event_types(endpoint.event_types)).order_by("id")
    until = now + _retry_window()
    messages = [
        WebhookMessage(
            endpoint=endpoint,
            event_id=event.id,
            webhook_id=f"evt_{event.id}",
            type=webhook_type(event.type),
            payload=event_payload(event),
            next_attempt_at=now,
            created_at=now,
            retry_until=until,
        )
        for event in events.iterator(chunk_size=2000)
    ]
    WebhookMessage.objects.bulk_create(messages, batch_size=1000, ignore_conflicts=True)
    WebhookEndpoint.objects.filter(pk=endpoint.pk, cursor=endpoint.cursor).update(cursor=upper)
    return len(messages)


def event_payload(event: Event) -> dict:
    """The body of an event's webhook: `{"id", "type", "created_at", "data"}`. An email event's data names the
    recipient, the message and the campaign run or transactional batch; a campaign event's the campaign and
    run. The event's own data (reason, url, user agent, totals, ...) follows."""
    own = event.data if isinstance(event.data, dict) else {}
    if event.type.startswith("campaign."):
        data = {"campaign_id": _str(event.campaign_id), "run_id": _str(event.run_id)}
    else:
        data = {"email": event.email, "message_id": event.message_id}
        if event.batch_id is not None:
            data["batch_id"] = str(event.batch_id)
        else:
            data.update(campaign_id=_str(event.campaign_id), run_id=_str(event.run_id))
    return {"id": str(event.id), "type": webhook_type(event.type), "created_at": to_utc_iso(event.occurred_at),
            "data": {**own, **data}}


def _str(value) -> str | None:
    return None if value is None else str(value)


def _retry_window() -> timedelta:
    return timedelta(hours=settings.WEBHOOK_RETRY_WINDOW_HOURS)


def _due(endpoint_id, now: datetime):
    return WebhookMessage.objects.filter(endpoint_id=endpoint_id, status=S.PENDING, next_attempt_at__lte=now)


def _lease_length(countdown: float = 0) -> timedelta:
    # Longer than a delivery task may wait for its countdown and then run (its hard time limit).
    return timedelta(seconds=countdown + settings.CELERY_TASK_TIME_LIMIT + settings.WEBHOOK_LEASE_MARGIN_SECONDS)


def _kick(now: datetime, *, endpoint_ids: list | None = None) -> None:
    """Enqueue one delivery task for each endpoint that has due messages, is not backing off and has no task
    in flight (its lease is free). The lease is taken here, so the queue never holds two for one endpoint."""
    ready = WebhookEndpoint.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        Q(retry_at__isnull=True) | Q(retry_at__lte=now),
        Exists(_due(OuterRef("pk"), now)),
        status=WebhookEndpoint.Status.ENABLED,
    )
    if endpoint_ids is not None:
        ready = ready.filter(pk__in=endpoint_ids)
    for endpoint in ready.only("pk", "lease_until"):
        _take_lease_and_enqueue(endpoint.pk, previous=endpoint.lease_until, now=now)


def _take_lease_and_enqueue(endpoint_id, *, previous: datetime | None, now: datetime, countdown: float = 0) -> bool:
    lease = now + _lease_length(countdown)
    taken = WebhookEndpoint.objects.filter(pk=endpoint_id, lease_until=previous).update(lease_until=lease)
    if taken:
        transaction.on_commit(
            lambda: current_app.send_task(
                DELIVER_TASK, args=[str(endpoint_id), lease.isoformat()], queue=DELIVER_QUEUE,
                countdown=countdown or None,
            )
        )
    return bool(taken)


# --- delivery ------------------------------------------------------------------------------------------


def webhook_endpoint_deliver(*, endpoint_id: UUID | str, lease: datetime) -> int:
    """Send a batch of the endpoint's due messages, oldest first, one request each; then hand the lease to the
    next batch (paced to WEBHOOK_RATE_PER_ENDPOINT) or give it back. Does nothing unless `lease` is still the
    endpoint's, so a duplicate or late task sends nothing. Stops at the first failure: while a receiver fails
    only its oldest message is tried, on the retry schedule. Returns how many requests it sent."""
    endpoint = WebhookEndpoint.objects.filter(
        pk=endpoint_id, lease_until=lease, status=WebhookEndpoint.Status.ENABLED
    ).first()
    if endpoint is None:
        return 0
    started = time.monotonic()
    budget = min(settings.WEBHOOK_TASK_SECONDS, settings.CELERY_TASK_SOFT_TIME_LIMIT / 2)
    size = 1 if endpoint.failure_streak else settings.WEBHOOK_BATCH_SIZE
    sent = 0
    for message in _due(endpoint.pk, timezone.now()).order_by("id")[:size]:
        sent += 1
        if not _attempt(endpoint, message) or endpoint.status != WebhookEndpoint.Status.ENABLED:
            break
        if time.monotonic() - started > budget:
            break
    _hand_on(endpoint, lease=lease, sent=sent, elapsed=time.monotonic() - started)
    return sent


def _hand_on(endpoint: WebhookEndpoint, *, lease: datetime, sent: int, elapsed: float) -> None:
    now = timezone.now()
    more = (
        endpoint.status == WebhookEndpoint.Status.ENABLED
        and (endpoint.retry_at is None or endpoint.retry_at <= now)
        and _due(endpoint.pk, now).exists()
    )
    with transaction.atomic():
        if more:
            rate = settings.WEBHOOK_RATE_PER_ENDPOINT
            countdown = max(0.0, sent / rate - elapsed) if rate else 0.0
            if _take_lease_and_enqueue(endpoint.pk, previous=lease, now=now, countdown=round(countdown, 3)):
                return
        WebhookEndpoint.objects.filter(pk=endpoint.pk, lease_until=lease).update(lease_until=None)


def _attempt(endpoint: WebhookEndpoint, message: WebhookMessage) -> bool:
    """One signed POST of the message and its consequences: the attempt log, the message's next retry or its
    end, the endpoint's failure streak. Returns whether the receiver took it (2xx)."""
    body = json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = signing.headers(
        secret=endpoint.secret, webhook_id=message.webhook_id, timestamp=int(time.time()), body=body
    )
    answer = http.post(url=endpoint.url, body=body, headers=headers)
    now = timezone.now()
    ok = answer.status_code is not None and 200 <= answer.status_code < 300
    attempts = message.attempts + 1
    window_start = None  # set when this attempt gives the message up
    update: dict = {"attempts": attempts, "next_trigger": WebhookAttempt.Trigger.SCHEDULE}
    next_retry = None
    if ok:
        update.update(status=S.SUCCEEDED, next_attempt_at=None)
    elif answer.status_code == 410:
        # Gone: the receiver says this URL will never take anything again. The message waits for a re-enable.
        update["next_attempt_at"] = now
    else:
        delay = _delay(attempts, answer.retry_after)
        next_retry = now + delay
        if next_retry > message.retry_until:
            update.update(status=S.FAILED, next_attempt_at=None)
            next_retry = None
            window_start = message.retry_until - _retry_window()
        else:
            update["next_attempt_at"] = next_retry
    with transaction.atomic():
        WebhookAttempt.objects.create(
            endpoint=endpoint,
            message=message,
            trigger=message.next_trigger,
            attempted_at=now,
            status_code=answer.status_code,
            duration_ms=answer.duration_ms,
            error=answer.error[:300],
            response_body=answer.body[:1000],
            next_retry_at=next_retry,
            succeeded=ok,
        )
        WebhookMessage.objects.filter(pk=message.pk, attempts=message.attempts).update(**update)
        _endpoint_after(endpoint, ok=ok, status_code=answer.status_code, now=now,
                        retry_at=next_retry or now + _delay(attempts, answer.retry_after), gave_up_from=window_start)
    return ok


def _delay(attempts: int, retry_after: float | None) -> timedelta:
    if retry_after is not None:
        # Retry-After is honoured, between a second and the schedule's longest step.
        return timedelta(seconds=min(max(retry_after, 1.0), RETRY_SCHEDULE_SECONDS[-1]))
    return timedelta(seconds=RETRY_SCHEDULE_SECONDS[min(attempts, len(RETRY_SCHEDULE_SECONDS)) - 1])


def _endpoint_after(endpoint: WebhookEndpoint, *, ok: bool, status_code: int | None, now: datetime,
                    retry_at: datetime, gave_up_from: datetime | None) -> None:
    """The failure streak: reset by a success; an endpoint is disabled by a 410, by failing for
    WEBHOOK_DISABLE_AFTER_HOURS, or when a message's whole retry window passed inside one streak."""
    if ok:
        if endpoint.failure_streak or endpoint.retry_at:
            endpoint.failure_streak, endpoint.failing_since, endpoint.retry_at = 0, None, None
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failure_streak=0, failing_since=None, retry_at=None)
        return
    endpoint.failure_streak += 1
    endpoint.failing_since = endpoint.failing_since or now
    endpoint.retry_at = retry_at
    fields = {"failure_streak": F("failure_streak") + 1, "failing_since": endpoint.failing_since, "retry_at": retry_at}
    reason = ""
    if status_code == 410:
        reason = "The receiver answered 410 Gone."
    elif now - endpoint.failing_since >= timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS) or (
        gave_up_from is not None and endpoint.failing_since <= gave_up_from
    ):
        reason = (f"Every attempt failed since {to_utc_iso(endpoint.failing_since)} "
                  f"({endpoint.failure_streak} in a row).")
    if reason:
        endpoint.status, endpoint.disabled_reason, endpoint.disabled_at = WebhookEndpoint.Status.DISABLED, reason, now
        fields.update(status=endpoint.status, disabled_reason=reason, disabled_at=now)
        # The notice operators see in the admin's event list, and integrators in GET /events.
        event_record(
            workspace_id=endpoint.workspace_id,
            type=E.WEBHOOK_DISABLED,
            occurred_at=now,
            data={"webhook_endpoint_id": str(endpoint.pk), "url": endpoint.url, "reason": reason},
        )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(**fields)

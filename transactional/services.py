"""Transactional mail (docs/architecture.md#transactional): accept, dispatch, send, cancel. See docs/decisions/012.

The database is the outbox. A request writes its messages (one per `to` address) and their first event
in one transaction; only after commit is anything enqueued, so a rejected or rolled-back request leaves
nothing behind and nothing is sent for a message that was never stored.

Exactly-once hand-off: a send claims its row with a conditional UPDATE (queued -> sending). Only the
call that moved the row sends; a redelivered or duplicated task, or a retry after a successful hand-off,
finds the row `sending` or `sent` and does nothing. A row left `sending` by a dead worker may or may not
have reached the mail server: the reaper marks it `failed` (uncertain) and never resends it, because a
second password-reset mail is worse than a missing one the user can request again.
"""

import logging
import uuid
from base64 import b64decode
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Workspace
from accounts.selectors import sending_domain_is_verified
from common import errors, metrics
from common.addresses import domain_of
from common.timerules import parse_instant, to_utc_iso
from delivery.content import add_tracking
from delivery.mime import address
from delivery.models import Event
from delivery.sending import ONE_CLICK
from delivery.services import events_record
from delivery.signing import dkim_sign
from delivery.tracking import MessageRef, unsubscribe_links
from delivery.transport import SendError, Transport, backoff_delay
from transactional import selectors
from transactional.errors import BatchNotCancellable, MessageNotCancellable
from transactional.models import TransactionalMessage

logger = logging.getLogger(__name__)

M = TransactionalMessage
S = TransactionalMessage.Status
K = Event.Type

MAX_SCHEDULE_AHEAD = timedelta(hours=72)
# A task enqueued with eta=send_at may start a moment early (clock skew between beat and the workers).
CLAIM_TOLERANCE = timedelta(seconds=2)


@dataclass(frozen=True)
class Accepted:
    batch_id: uuid.UUID
    message_ids: list[uuid.UUID]
    sandbox: bool


def _event(message: TransactionalMessage, kind: str, at: datetime, detail: str = "", **data) -> Event:
    """An event of the one event table (delivery.models.Event); `detail` is the message log's sentence."""
    return Event(
        workspace_id=message.workspace_id,
        type=kind,
        occurred_at=at,
        email=message.to_email,
        message_id=str(message.pk),
        batch_id=message.batch_id,
        data={"detail": detail[:500], **data},
    )


def _record(message: TransactionalMessage, kind: str, at: datetime, detail: str = "", **data) -> None:
    events_record(events=[_event(message, kind, at, detail, **data)])


def _domain(email: str) -> str:
    return domain_of(email) or "localhost"


def transactional_schedule_instant(*, scheduled_at: str | datetime | None, now: datetime) -> datetime | None:
    """The UTC instant of a requested `scheduled_at`, or None for "send now". 400 when it has no offset,
    is not in the future, or is more than 72 hours ahead (exactly 72 hours is allowed)."""
    if scheduled_at is None:
        return None
    instant = parse_instant(value=scheduled_at, timezone_name=None, field="scheduled_at", now=now)
    if instant > now + MAX_SCHEDULE_AHEAD:
        raise errors.ValidationError.for_field(
            "scheduled_at", "scheduled_at cannot be more than 72 hours in the future."
        )
    return instant


def transactional_send(
    *,
    workspace: Workspace,
    priority: str,
    sender: dict,
    to: list[dict],
    subject: str,
    cc: list[dict] | None = None,
    bcc: list[dict] | None = None,
    reply_to: dict | None = None,
    html: str = "",
    text: str = "",
    headers: dict[str, str] | None = None,
    attachments: list[dict] | None = None,
    customer_reference: str = "",
    scheduled_at: str | datetime | None = None,
    sandbox: bool = False,
    track_opens: bool = False,
    track_clicks: bool = False,
    list_unsubscribe: bool = False,
) -> Accepted:
    """Accept one request: one message per `to` address, sharing a batch id. Everything is checked
    before anything is written; the send tasks are enqueued only once the rows are committed."""
    now = timezone.now()
    if priority not in M.Priority.values:
        raise errors.ValidationError.for_field("priority", 'priority must be "high" or "low".')
    if problems := M.request_problems(to=to, cc=cc or [], bcc=bcc or [], html=html, text=text):
        raise errors.ValidationError(details=problems)
    send_at = transactional_schedule_instant(scheduled_at=scheduled_at, now=now)
    if not sending_domain_is_verified(workspace=workspace, email=sender["email"]):
        raise errors.ValidationError.for_field(
            "from.email",
            f"'{_domain(sender['email'])}' is not a verified sending domain of this workspace; "
            "add and verify it under sending-domains first.",
        )
    attachments = attachments or []
    total = sum(int(item["size"]) for item in attachments)
    limit = settings.TRANSACTIONAL_MAX_ATTACHMENT_BYTES
    if total > limit:
        raise errors.ContentRejected(
            f"Attachments total {total} bytes; the limit is {limit} bytes ({limit / 1048576:g} MiB).",
            {"limit_bytes": limit, "size_bytes": total},
        )

    batch_id = uuid.uuid4()
    if send_at is not None:
        status, first = S.SCHEDULED, K.SCHEDULED
        detail = f"Email is scheduled to be sent at {to_utc_iso(send_at)}."
    elif sandbox:
        status, first, detail = S.SENT, K.SENT, "Sandbox: accepted and logged, not handed to a mail server."
    else:
        status, first, detail = S.QUEUED, K.QUEUED, "Queued for immediate sending."
    messages = [
        M(
            id=uuid.uuid4(),
            workspace=workspace,
            batch_id=batch_id,
            priority=priority,
            status=status,
            sandbox=sandbox,
            from_email=sender["email"],
            from_name=sender.get("name", ""),
            to_email=recipient["email"],
            to_name=recipient.get("name", ""),
            cc=[dict(item) for item in cc or []],
            bcc=[dict(item) for item in bcc or []],
            reply_to=dict(reply_to) if reply_to else None,
            subject=subject,
            html=html,
            text=text,
            headers=dict(headers or {}),
            attachments=[dict(item) for item in attachments],
            customer_reference=customer_reference,
            track_opens=track_opens,
            track_clicks=track_clicks,
            list_unsubscribe=list_unsubscribe,
            scheduled_at=send_at,
            send_at=send_at or now,
            enqueued_at=now if status == S.QUEUED else None,
            sent_at=now if status == S.SENT else None,
            smtp_message_id=f"<tx-{uuid.uuid4().hex}@{_domain(sender['email'])}>",
        )
        for recipient in to
    ]
    with transaction.atomic():
        M.objects.bulk_create(messages)
        events_record(events=[_event(m, first, now, detail) for m in messages])
        if status == S.QUEUED:
            for message in messages:
                _enqueue_on_commit(message.id, message.queue, None)
    return Accepted(batch_id=batch_id, message_ids=[m.id for m in messages], sandbox=sandbox)


# One task per priority, each bound to its own queue, so no call can put a high-priority message on the
# low queue by forgetting an option (a plain `.delay()` lands where the task says). By name: the task
# module imports this one.
SEND_TASK_OF_QUEUE = {"tx_high": "transactional.tasks.send_high", "tx_low": "transactional.tasks.send_low"}


def _enqueue_on_commit(message_id, queue: str, eta: datetime | None) -> None:
    # robust: a broker hiccup must not undo the commit; the dispatcher re-enqueues a queued row whose
    # task never ran (TRANSACTIONAL_REENQUEUE_AFTER_SECONDS).
    task = SEND_TASK_OF_QUEUE[queue]
    transaction.on_commit(
        lambda: current_app.send_task(task, args=[str(message_id)], queue=queue, eta=eta), robust=True
    )


# --- cancel ---------------------------------------------------------------------------------------------


def transactional_message_cancel(*, workspace: Workspace, message_id) -> TransactionalMessage:
    """Cancel a scheduled message. The row lock is the one the dispatcher's claim takes, so a cancel
    racing a claim either wins (the dispatcher skips the locked row and then finds it cancelled) or
    waits, then sees `queued` and answers 409."""
    now = timezone.now()
    with transaction.atomic():
        message = selectors.transactional_message_get(
            workspace=workspace, message_id=message_id, for_update=True
        )
        if message.status != S.SCHEDULED:
            raise MessageNotCancellable(status=message.status)
        message.status = S.CANCELLED
        message.save(update_fields=["status", "updated_at"])
        _record(message, K.CANCELLED, now, "Cancelled by API.")
    return message


def transactional_batch_cancel(*, workspace: Workspace, batch_id) -> list[TransactionalMessage]:
    """Cancel every scheduled message of a batch, all or nothing: if any message has already left
    `scheduled` (other than by an earlier cancel), nothing is cancelled and the answer is 409."""
    now = timezone.now()
    with transaction.atomic():
        messages = selectors.transactional_batch_messages(
            workspace=workspace, batch_id=batch_id, for_update=True
        )
        if not messages:
            raise errors.NotFound()
        scheduled = [m for m in messages if m.status == S.SCHEDULED]
        blocking = [m for m in messages if m.status not in (S.SCHEDULED, S.CANCELLED)]
        if blocking or not scheduled:
            raise BatchNotCancellable(statuses={str(m.id): m.status for m in messages})
        M.objects.filter(id__in=[m.id for m in scheduled], status=S.SCHEDULED).update(
            status=S.CANCELLED, updated_at=now
        )
        events_record(events=[_event(m, K.CANCELLED, now, "Cancelled with its batch by API.") for m in scheduled])
        for message in scheduled:
            message.status = S.CANCELLED
    return messages


# --- dispatch and reap (beat, every second or two) --------------------------------------------------------


@dataclass
class TickResult:
    scheduled_queued: int = 0
    requeued: int = 0
    uncertain: int = 0


def transactional_dispatch_due(*, limit: int | None = None) -> TickResult:
    """Claim what falls due within the horizon and enqueue it with eta=send_at on its priority's queue:
    scheduled messages (-> queued, with a `queued` event), retries waiting for their backoff, and queued
    messages whose task was enqueued long ago and never ran (lost with Redis; a duplicate is harmless,
    the send claim lets one through). Then flag messages stuck in `sending` (see module docstring).

    FOR UPDATE SKIP LOCKED on the partial indexes: two dispatchers never claim the same row, and a row a
    cancel holds is skipped, not waited for."""
    now = timezone.now()
    limit = limit or settings.TRANSACTIONAL_DISPATCH_MAX_PER_TICK
    horizon = now + timedelta(seconds=settings.TRANSACTIONAL_DISPATCH_HORIZON_SECONDS)
    stale = now - timedelta(seconds=settings.TRANSACTIONAL_REENQUEUE_AFTER_SECONDS)
    result = TickResult()
    with transaction.atomic():
        due = list(
            M.objects.select_for_update(skip_locked=True)
            .filter(status=S.SCHEDULED, send_at__lte=horizon)
            .order_by("send_at")
            .only("id", "workspace_id", "batch_id", "to_email", "priority", "send_at")[:limit]
        )
        if due:
            M.objects.filter(id__in=[m.id for m in due], status=S.SCHEDULED).update(
                status=S.QUEUED, enqueued_at=now, updated_at=now
            )
            events_record(events=[_event(m, K.QUEUED, now, "Due: handed to the send queue.") for m in due])
        waiting = list(
            M.objects.select_for_update(skip_locked=True)
            .filter(status=S.QUEUED, send_at__lte=horizon)
            .exclude(enqueued_at__gte=stale)
            .order_by("send_at")
            .only("id", "priority", "send_at")[: max(0, limit - len(due))]
        )
        if waiting:
            M.objects.filter(id__in=[m.id for m in waiting], status=S.QUEUED).update(enqueued_at=now)
        for message in [*due, *waiting]:
            _enqueue_on_commit(message.id, message.queue, message.send_at if message.send_at > now else None)
    result.scheduled_queued, result.requeued = len(due), len(waiting)
    result.uncertain = _reap_stuck_sending(now=now)
    return result


def _reap_stuck_sending(*, now: datetime) -> int:
    cutoff = now - timedelta(seconds=settings.TRANSACTIONAL_SENDING_TIMEOUT_SECONDS)
    detail = (
        "Delivery uncertain: the worker stopped while handing the message to the mail server. "
        "It may have been delivered, so it is not sent again."
    )
    with transaction.atomic():
        stuck = list(
            M.objects.select_for_update(skip_locked=True)
            .filter(status=S.SENDING, claimed_at__lt=cutoff)
            .only("id", "workspace_id", "batch_id", "to_email")[:1000]
        )
        if stuck:
            M.objects.filter(id__in=[m.id for m in stuck], status=S.SENDING).update(
                status=S.FAILED, error=detail[:500], updated_at=now
            )
            events_record(events=[_event(m, K.FAILED, now, detail, reason=detail, uncertain=True) for m in stuck])
    if stuck:
        logger.warning("transactional: %d message(s) left sending by a dead worker marked failed", len(stuck))
    return len(stuck)


# --- send (the tx_high / tx_low workers) ------------------------------------------------------------------


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the n-th temporary failure: base, 2x base, 4x base, ... capped."""
    return backoff_delay(
        attempts,
        base_seconds=settings.TRANSACTIONAL_RETRY_BASE_SECONDS,
        max_seconds=settings.TRANSACTIONAL_RETRY_MAX_SECONDS,
    )


def transactional_message_send(*, message_id) -> str:
    """Hand one message to the mail server, once. Returns the status it ended in ("" when this call
    did not win the claim: already sent, cancelled, in flight elsewhere or not due yet)."""
    now = timezone.now()
    claimed = M.objects.filter(pk=message_id, status=S.QUEUED, send_at__lte=now + CLAIM_TOLERANCE).update(
        status=S.SENDING, claimed_at=now, attempts=F("attempts") + 1, updated_at=now
    )
    if not claimed:
        return ""
    message = M.objects.get(pk=message_id)
    if message.sandbox:
        return _finish(message, S.SENT, K.SENT, "Sandbox: not handed to a mail server.")
    try:
        # The connection is opened and closed by the transport, not by send_messages, so an error on QUIT
        # after the server accepted the message cannot be mistaken for a refusal (and cause a resend).
        with Transport() as transport:
            sign = partial(dkim_sign, workspace_id=message.workspace_id, from_email=message.from_email)
            transport.send_email(build_email(message), sign=sign)
    except SendError as refused:
        return _after_refusal(message, refused)
    return _finish(message, S.SENT, K.SENT, f"Accepted by the mail server as {message.smtp_message_id}.")


def _finish(message: TransactionalMessage, status: str, kind: str, detail: str, error: str = "") -> str:
    now = timezone.now()
    with transaction.atomic():
        # Guarded by status and by this claim's timestamp: a reaper or another claim that took the row
        # over in the meantime is not overwritten.
        moved = M.objects.filter(pk=message.pk, status=S.SENDING, claimed_at=message.claimed_at).update(
            status=status,
            sent_at=now if status == S.SENT else None,
            error=error[:500],
            updated_at=now,
        )
        if moved:
            if status == S.SENT and message.sandbox:
                pass  # accepted and logged, never handed to a mail server: not a sent message
            elif status == S.SENT:
                metrics.message_handed_off(queue=message.queue, due_at=message.send_at, sent_at=now)
            else:
                metrics.message_outcome(queue=message.queue, outcome=status)
            extra = {"reason": error} if error else {}
            if status == S.SENT:
                extra["smtp_message_id"] = message.smtp_message_id
            _record(message, kind, now, detail, **extra)
    return status if moved else ""


def _after_refusal(message: TransactionalMessage, refused: SendError) -> str:
    reason = str(refused)
    if refused.permanent and refused.recipient_fault:
        return _finish(message, S.BOUNCED, K.BOUNCED, f"Refused: {reason}", error=reason)
    if refused.permanent or message.attempts >= settings.TRANSACTIONAL_MAX_ATTEMPTS:
        return _finish(
            message, S.FAILED, K.FAILED, f"Gave up after {message.attempts} attempts: {reason}", error=reason
        )
    now = timezone.now()
    delay = retry_delay(message.attempts)
    wait = int(delay.total_seconds())
    with transaction.atomic():
        moved = M.objects.filter(
            pk=message.pk, status=S.SENDING, claimed_at=message.claimed_at
        ).update(
            status=S.QUEUED,
            send_at=now + delay,
            enqueued_at=None,  # the dispatcher enqueues it when the backoff is within its horizon
            claimed_at=None,
            error=reason[:500],
            updated_at=now,
        )
        if moved:
            metrics.message_outcome(queue=message.queue, outcome="deferred")
            _record(
                message,
                K.DEFERRED,
                now,
                f"Temporary failure (attempt {message.attempts}), retrying in {wait}s: {reason}",
                reason=reason,
                retry_at=to_utc_iso(now + delay),
            )
    return S.QUEUED if moved else ""


def _address(item: dict) -> str:
    return address(item.get("name", ""), item["email"])


def tracking_ref(message: TransactionalMessage) -> MessageRef:
    return MessageRef(
        message_id=str(message.pk),
        workspace_id=str(message.workspace_id),
        batch_id=str(message.batch_id),
        email=message.to_email,
    )


def build_email(message: TransactionalMessage) -> EmailMultiAlternatives:
    """The message as it goes out: tracking as asked (the one outbound layer's add_tracking and
    unsubscribe links, the same as campaign mail)."""
    headers = {**message.headers, "Message-ID": message.smtp_message_id}
    ref = tracking_ref(message)
    html = add_tracking(message.html, opens=message.track_opens, clicks=message.track_clicks, target=ref)
    if message.list_unsubscribe:
        links = unsubscribe_links(ref, _domain(message.from_email))
        headers.update({"List-Unsubscribe": links.header, **ONE_CLICK})
    html_only = bool(html) and not message.text
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=html if html_only else message.text,
        from_email=_address(message.sender),
        to=[_address(message.recipient)],
        cc=[_address(item) for item in message.cc],
        bcc=[_address(item) for item in message.bcc],
        reply_to=[_address(message.reply_to)] if message.reply_to else None,
        headers=headers,
    )
    if html_only:
        email.content_subtype = "html"
    elif html:
        email.attach_alternative(html, "text/html")
    for item in message.attachments:
        email.attach(item["filename"], b64decode(item["content"]), item["content_type"])
    return email


# What an ESP's later report moves a sent message to (docs/decisions/042); a later `delivered` does not undo
# a bounce, and anything else (opens, clicks, deferrals) is in the log only.
_STATUS_OF_ESP_EVENT = {K.DELIVERED: (S.DELIVERED, [S.SENT]), K.BOUNCED: (S.BOUNCED, [S.SENT, S.DELIVERED])}


def transactional_message_esp_outcome(*, workspace_id, message_id: str, kind: str) -> bool:
    """Move a sent message to `delivered` or `bounced` when its ESP reports it. Guarded by status, so a
    repeated or out-of-order report changes nothing. Returns whether the status changed."""
    if kind not in _STATUS_OF_ESP_EVENT:
        return False
    status, sources = _STATUS_OF_ESP_EVENT[kind]
    return bool(
        M.objects.filter(workspace_id=workspace_id, pk=message_id, status__in=sources).update(
            status=status, updated_at=timezone.now()
        )
    )


class TransactionalMessageSource:
    """Finds a transactional message by the Message-ID header it was sent with (delivery.sources)."""

    def find_by_header(self, message_ids: set[str]):
        message = (
            M.objects.filter(smtp_message_id__in=message_ids)
            .exclude(status__in=[S.SCHEDULED, S.QUEUED, S.CANCELLED])
            .only("workspace_id", "id", "to_email", "batch_id")
            .first()
        )
        if message is None:
            return None
        return _Found(message.workspace_id, str(message.pk), message.to_email, message.batch_id)


@dataclass(frozen=True)
class _Found:
    workspace_id: UUID
    message_id: str
    email: str
    batch_id: UUID

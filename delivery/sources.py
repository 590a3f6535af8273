"""What the send path needs to know about the runs it sends for, asked of the app that owns them.

Delivery rows belong to runs of campaigns, but `delivery` sits below `campaigns` (docs/architecture.md,
"Layers"): it may not import it. So the owner of the runs registers a `RunSource` when Django starts
(campaigns.apps), and the send path asks it which runs may send right now and what their messages say.
The run-state subqueries stay inside the claim's single UPDATE, so a pause or a stop still takes effect
atomically with the claim, exactly as a join would.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet

from common.quiet_hours import QuietHours
from delivery.content import MessageContent


@dataclass(frozen=True)
class RunPolicy:
    """The scheduling policies a run's owner applies at send time (docs/decisions/060)."""

    max_lateness_minutes: int | None = None
    quiet_hours: QuietHours | None = None


class RunSource(Protocol):
    def claimable_run_ids(self) -> QuerySet:
        """A values_list("id") queryset: runs whose queued deliveries a send batch may claim now."""

    def dispatchable_run_ids(self) -> QuerySet:
        """Runs whose due deliveries the dispatcher may enqueue (claimable, or still fanning out)."""

    def stopped_run_ids(self) -> QuerySet:
        """Runs whose remaining deliveries are cancelled (the campaign or the run was stopped)."""

    def contents(self, run_ids: Iterable[UUID]) -> dict[UUID, MessageContent]:
        """The message each run sends (sources, sending identity, tracking). A run it does not know is
        left out; its deliveries fail."""

    def policies(self, run_ids: Iterable[UUID]) -> dict[UUID, RunPolicy]:
        """The send-time policies of each run; a run left out has none."""


_source: RunSource | None = None


def register_run_source(source: RunSource) -> None:
    global _source
    _source = source


def run_source() -> RunSource:
    if _source is None:
        raise ImproperlyConfigured("No RunSource registered: is the campaigns app in INSTALLED_APPS?")
    return _source


class SentMessage(Protocol):
    workspace_id: UUID
    message_id: str  # the id integrators know the message by
    email: str
    batch_id: UUID | None


class MessageSource(Protocol):
    """An owner of messages that the send path does not keep as Delivery rows (transactional mail): finds
    the message an ESP event is about by the Message-ID header it was sent with."""

    def find_by_header(self, message_ids: set[str]) -> SentMessage | None: ...


_message_sources: list[MessageSource] = []


def register_message_source(source: MessageSource) -> None:
    if source not in _message_sources:
        _message_sources.append(source)


def message_sources() -> list[MessageSource]:
    return list(_message_sources)

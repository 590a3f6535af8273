"""Campaign errors of docs/architecture.md#errors, in the one hierarchy of common.errors."""

from campaigns.models import Campaign
from common.errors import ApplicationError


def _statuses(action: str, conjunction: str) -> str:
    """The statuses Campaign.TRANSITIONS allows `action` in, as words: "draft, failed and scheduled"."""
    names = [str(status) for status in Campaign.TRANSITIONS[action]]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


class CampaignNotSendable(ApplicationError):
    status = 409
    code = "CAMPAIGN_NOT_SENDABLE"

    def __init__(self, *, status: str, action: str = "send or schedule"):
        super().__init__(
            f"A campaign in status '{status}' cannot {action}; only {_statuses('send-now', 'and')} campaigns can.",
            {"status": status},
        )


class CampaignNotCancellable(ApplicationError):
    status = 409
    code = "CAMPAIGN_NOT_CANCELLABLE"

    def __init__(self, *, status: str):
        stoppable = status in Campaign.TRANSITIONS["stop"]
        hint = " It has started sending: pause or stop it instead." if stoppable else ""
        super().__init__(
            f"Only a scheduled campaign can be cancelled; this one is '{status}'.{hint}", {"status": status}
        )


class CampaignNotEditable(ApplicationError):
    status = 409
    code = "CAMPAIGN_NOT_EDITABLE"

    def __init__(self, *, status: str, action: str = "edited", allowed: str | None = None):
        allowed = allowed or _statuses("edit", "or")
        super().__init__(
            f"A campaign in status '{status}' cannot be {action}; only {allowed} campaigns can.", {"status": status}
        )


class CampaignTransitionInProgress(ApplicationError):
    status = 409
    code = "CAMPAIGN_TRANSITION_IN_PROGRESS"
    default_message = "Another change of this campaign is in progress; retry in a moment."
    transient = True  # decision 004: a client retries it, with the same Idempotency-Key (decision 023)


class CampaignNotReady(ApplicationError):
    status = 422
    code = "CAMPAIGN_NOT_READY"

    def __init__(self, *, missing: list[str]):
        super().__init__(
            f"The campaign is not ready to send: missing {', '.join(missing)}.",
            {"can_send": False, "missing": missing},
        )


class CampaignNotSending(ApplicationError):
    """pause/stop of a campaign that is not sending (or paused, for stop)."""

    status = 409
    code = "CAMPAIGN_NOT_SENDING"

    def __init__(self, *, status: str, action: str):
        super().__init__(f"Only a sending campaign can be {action}; this one is '{status}'.", {"status": status})


class CampaignNotPaused(ApplicationError):
    status = 409
    code = "CAMPAIGN_NOT_PAUSED"

    def __init__(self, *, status: str):
        super().__init__(f"Only a paused campaign can be resumed; this one is '{status}'.", {"status": status})

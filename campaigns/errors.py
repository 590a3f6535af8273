"""Campaign errors of docs/architecture.md#errors, in the one hierarchy of common.errors."""

from common.errors import ApplicationError


class CampaignNotSendable(ApplicationError):
    status = 409
    code = "CAMPAIGN_NOT_SENDABLE"

    def __init__(self, *, status: str, action: str = "send or schedule"):
        super().__init__(
            f"A campaign in status '{status}' cannot {action}; only draft, failed and scheduled campaigns can.",
            {"status": status},
        )


class CampaignNotCancellable(ApplicationError):
    status = 409
    code = "CAMPAIGN_NOT_CANCELLABLE"

    def __init__(self, *, status: str):
        hint = " It has started sending: pause or stop it instead." if status in ("sending", "paused") else ""
        super().__init__(
            f"Only a scheduled campaign can be cancelled; this one is '{status}'.{hint}", {"status": status}
        )


class CampaignNotEditable(ApplicationError):
    status = 409
    code = "CAMPAIGN_NOT_EDITABLE"

    def __init__(self, *, status: str, action: str = "edited", allowed: str = "draft, scheduled or failed"):
        super().__init__(
            f"A campaign in status '{status}' cannot be {action}; only {allowed} campaigns can.", {"status": status}
        )


class CampaignTransitionInProgress(ApplicationError):
    status = 409
    code = "CAMPAIGN_TRANSITION_IN_PROGRESS"
    default_message = "Another change of this campaign is in progress; retry in a moment."


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

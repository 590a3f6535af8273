"""Transactional errors of docs/architecture.md#errors, in the one hierarchy of common.errors."""

from common.errors import ApplicationError


class MessageNotCancellable(ApplicationError):
    status = 409
    code = "MESSAGE_NOT_CANCELLABLE"

    def __init__(self, *, status: str):
        super().__init__(
            f"Only a scheduled message can be cancelled; this one is '{status}'.", {"status": status}
        )


class BatchNotCancellable(MessageNotCancellable):
    """All or nothing: a batch is cancelled only while none of its messages has left `scheduled`."""

    def __init__(self, *, statuses: dict[str, str]):
        ApplicationError.__init__(
            self,
            "Only a batch whose messages are all still scheduled can be cancelled; nothing was cancelled.",
            {"statuses": statuses},
        )

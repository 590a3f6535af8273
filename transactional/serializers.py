"""HTTP shapes of the transactional API (docs/architecture.md). Input serializers check the form of a request;
the rules of its whole (a body, the number of recipients) are TransactionalMessage.request_problems, and
those that need the database or the clock (verified sending domain, scheduled_at window, attachment size
limit) live in transactional.services."""

import base64
import binascii
import re

from rest_framework import serializers

from common.serializers import StrictInputSerializer, reject_nul
from common.validators import SINGLE_LINE_MESSAGE, is_single_line
from delivery.models import Event
from transactional.models import TransactionalMessage

# RFC 5322 §2.2: a field name is printable US-ASCII except the colon.
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
# Headers the message builds from the body's own fields (or the platform sets): a custom header with one
# of these names would contradict or duplicate them.
RESERVED_HEADERS = {
    "from": "from",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "reply-to": "reply_to",
    "subject": "subject",
    "sender": None,
    "message-id": None,
    "date": None,
    "mime-version": None,
    "content-type": None,
    "content-transfer-encoding": None,
    "return-path": None,
}


def no_header_breaks(value):
    """A header value with CR or LF could inject headers (or a whole second message): refuse it
    (common.validators.single_line, the rule every header-bound field shares)."""
    if isinstance(value, str) and not is_single_line(value):
        raise serializers.ValidationError(SINGLE_LINE_MESSAGE)
    return value


class AddressInput(StrictInputSerializer):
    # no_header_breaks too: validate_email lets a quoted local part hold control characters such as VT.
    email = serializers.EmailField(max_length=254, validators=[no_header_breaks])
    name = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", validators=[no_header_breaks]
    )


class AttachmentInput(StrictInputSerializer):
    filename = serializers.CharField(max_length=255, validators=[no_header_breaks])
    content_type = serializers.CharField(max_length=255, required=False, default="application/octet-stream")
    content = serializers.CharField(trim_whitespace=False, help_text="The file, base64-encoded.")

    def validate_filename(self, value: str) -> str:
        if "/" in value or "\\" in value:
            raise serializers.ValidationError("A file name may not contain a path separator.")
        return value

    def validate_content_type(self, value: str) -> str:
        if not _CONTENT_TYPE.match(value):
            raise serializers.ValidationError('Give a MIME type such as "application/pdf".')
        return value.lower()

    def validate_content(self, value: str) -> str:
        # Line breaks are usual in base64 (MIME wraps it at 76); anything else outside the alphabet is not.
        compact = "".join(value.split())
        try:
            decoded = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("Must be base64-encoded (RFC 4648).") from None
        self.decoded_size = len(decoded)
        return compact

    def validate(self, attrs):
        attrs["size"] = self.decoded_size
        return attrs


class HeadersField(serializers.DictField):
    child = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=998)

    def to_internal_value(self, data):
        headers = super().to_internal_value(data)
        errors = {}
        seen = set()
        for name, value in headers.items():
            lowered = name.lower()
            if not _HEADER_NAME.match(name):
                errors[name] = ["Not a valid header name (printable ASCII, no spaces or colon, at most 76)."]
            elif lowered in RESERVED_HEADERS:
                field = RESERVED_HEADERS[lowered]
                errors[name] = [
                    f"Set with the `{field}` field." if field else "This header is set by the platform."
                ]
            elif lowered in seen:
                errors[name] = ["Given twice (header names are case-insensitive)."]
            elif not is_single_line(value):
                errors[name] = [SINGLE_LINE_MESSAGE]
            seen.add(lowered)
        if errors:
            raise serializers.ValidationError(errors)
        return headers


class MessageTrackingInput(StrictInputSerializer):
    opens = serializers.BooleanField(required=False, default=False, help_text="Add an open pixel to the html.")
    clicks = serializers.BooleanField(
        required=False, default=False, help_text="Route the html's http(s) links through the click endpoint."
    )
    unsubscribe = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Add List-Unsubscribe and List-Unsubscribe-Post (RFC 8058 one-click); an unsubscribe puts "
        "the recipient on the workspace's suppression list.",
    )


class TransactionalInput(StrictInputSerializer):
    """A message to send now or schedule; one message per `to` address."""

    # `from` is a Python keyword, so get_fields adds it.

    # How many (at least one `to`, at most TRANSACTIONAL_MAX_RECIPIENTS in all) is request_problems' rule.
    to = serializers.ListField(child=AddressInput())
    cc = serializers.ListField(child=AddressInput(), required=False, default=list)
    bcc = serializers.ListField(child=AddressInput(), required=False, default=list)
    reply_to = AddressInput(required=False, allow_null=True, default=None)
    subject = serializers.CharField(max_length=998, validators=[no_header_breaks])
    html = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    text = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    attachments = serializers.ListField(child=AttachmentInput(), required=False, default=list, max_length=100)
    customer_reference = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", validators=[no_header_breaks]
    )
    headers = HeadersField(required=False, default=dict)
    tracking = MessageTrackingInput(required=False, help_text="Nothing is tracked unless asked for.")
    scheduled_at = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        max_length=64,
        help_text="ISO 8601 with an offset or Z, in the future, at most 72 hours ahead; absent = now.",
    )

    def get_fields(self):
        fields = {"from": AddressInput()}
        fields.update(super().get_fields())
        return fields

    def validate_html(self, value: str) -> str:
        return reject_nul(value)

    def validate_text(self, value: str) -> str:
        return reject_nul(value)

    def validate(self, attrs):
        problems = TransactionalMessage.request_problems(
            to=attrs["to"], cc=attrs["cc"], bcc=attrs["bcc"], html=attrs["html"], text=attrs["text"]
        )
        if problems:
            raise serializers.ValidationError(problems)
        tracking = attrs.pop("tracking", None) or {}
        if tracking.get("unsubscribe") and any(
            name.lower() in ("list-unsubscribe", "list-unsubscribe-post") for name in attrs["headers"]
        ):
            raise serializers.ValidationError(
                {"headers": ["List-Unsubscribe is set by tracking.unsubscribe; give one or the other."]}
            )
        attrs["track_opens"] = bool(tracking.get("opens"))
        attrs["track_clicks"] = bool(tracking.get("clicks"))
        attrs["list_unsubscribe"] = bool(tracking.get("unsubscribe"))
        attrs["sender"] = attrs.pop("from")
        return attrs


class PriorityQuery(serializers.Serializer):
    priority = serializers.ChoiceField(
        choices=TransactionalMessage.Priority.choices,
        error_messages={
            "required": "priority is required: add ?priority=high or ?priority=low.",
            "invalid_choice": 'priority must be "high" or "low".',
            "null": 'priority must be "high" or "low".',
        },
    )


def flatten_errors(errors, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors -> one level with paths as keys: "to[0].email", "headers.X-Foo"."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            if isinstance(key, int):
                name = f"{prefix}[{key}]"
            elif key == "non_field_errors" and prefix:
                name = prefix
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            for path, messages in flatten_errors(value, name).items():
                out.setdefault(path, []).extend(messages)
    elif isinstance(errors, list):
        if all(not isinstance(item, (dict, list)) for item in errors):
            out[prefix or "non_field_errors"] = [str(item) for item in errors]
        else:
            for index, item in enumerate(errors):
                if item:
                    out.update(flatten_errors(item, f"{prefix}[{index}]"))
    else:
        out[prefix or "non_field_errors"] = [str(errors)]
    return out


# --- output ----------------------------------------------------------------------------------------------


class AddressOutput(serializers.Serializer):
    email = serializers.EmailField()
    name = serializers.CharField()


class AttachmentOutput(serializers.Serializer):
    filename = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField(help_text="Decoded size in bytes.")


class EventOutput(serializers.Serializer):
    kind = serializers.ChoiceField(source="type", choices=Event.Type.choices)
    at = serializers.DateTimeField(source="occurred_at")
    detail = serializers.CharField(source="data.detail", default="")


class MessageTrackingOutput(serializers.Serializer):
    opens = serializers.BooleanField(source="track_opens")
    clicks = serializers.BooleanField(source="track_clicks")
    unsubscribe = serializers.BooleanField(source="list_unsubscribe")


class MessageOutput(serializers.Serializer):
    """One message of the log: one `to` address of a request."""

    # `from` is a Python keyword, so get_fields adds it.

    message_id = serializers.UUIDField(source="id")
    batch_id = serializers.UUIDField()
    priority = serializers.ChoiceField(choices=TransactionalMessage.Priority.choices)
    status = serializers.ChoiceField(choices=TransactionalMessage.Status.choices)
    sandbox = serializers.BooleanField(
        help_text="Accepted with a sandbox key: never handed to a mail server."
    )
    to = AddressOutput(source="recipient")
    cc = AddressOutput(many=True)
    bcc = AddressOutput(many=True)
    reply_to = AddressOutput(allow_null=True)
    subject = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())
    attachments = AttachmentOutput(many=True)
    customer_reference = serializers.CharField()
    scheduled_at = serializers.DateTimeField(allow_null=True)
    send_at = serializers.DateTimeField(help_text="When the next attempt is (or was) due.")
    sent_at = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField()
    smtp_message_id = serializers.CharField(help_text="The Message-ID header of the sent message.")
    tracking = MessageTrackingOutput(source="*")
    error = serializers.CharField(help_text="Why the last attempt failed, if it did.")
    created_at = serializers.DateTimeField()

    def get_fields(self):
        fields = super().get_fields()
        ordered = {"message_id": fields.pop("message_id"), "batch_id": fields.pop("batch_id")}
        ordered["from"] = AddressOutput(source="sender")
        ordered.update(fields)
        return ordered


class MessageDetailOutput(MessageOutput):
    html = serializers.CharField()
    text = serializers.CharField()
    events = EventOutput(many=True)


class AcceptedOutput(serializers.Serializer):
    status = serializers.IntegerField(help_text="202, or 200 for a sandbox key.")
    message = serializers.CharField()
    success = serializers.BooleanField()
    message_id = serializers.UUIDField(help_text="The first (often the only) message of the batch.")
    batch_id = serializers.UUIDField()
    message_ids = serializers.ListField(
        child=serializers.UUIDField(), help_text="One message per `to` address."
    )
    sandbox = serializers.BooleanField()


class BatchCancelOutput(serializers.Serializer):
    batch_id = serializers.UUIDField()
    messages = MessageOutput(many=True, help_text="The batch's messages, now cancelled.")

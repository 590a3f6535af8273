"""Standard Webhooks signatures (https://www.standardwebhooks.com/, "Signature scheme"): an HMAC-SHA256 of
`<webhook-id>.<webhook-timestamp>.<body>` keyed with the base64 secret after its `whsec_` prefix."""

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    # 24 random bytes: the specification asks for between 24 and 64.
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signature(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body),
    }

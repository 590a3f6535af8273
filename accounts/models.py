import hashlib
import re
import secrets
import uuid

from django.db import models
from django.utils import timezone

from common.timezones import validate_timezone_name


class Workspace(models.Model):
    """The tenant. Every object of the product belongs to exactly one workspace (docs/architecture.md#tenancy)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, unique=True)
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone_name],
        help_text="Default IANA timezone for recipients without one of their own.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A bearer key. Only its SHA-256 is stored: keys are 256-bit random strings, so a fast hash is
    enough (no dictionary to attack) and lookup by hash stays one indexed query per request."""

    KEY_PREFIX = "msk"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=16, db_index=True, editable=False, help_text="Visible start of the key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    sandbox = models.BooleanField(default=False, help_text="Sandbox keys are accepted but nothing is sent.")
    revoked = models.BooleanField(default=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="From this moment on the key is refused (401). Empty: it never expires."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.workspace})"

    def is_expired(self, now) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()

    @classmethod
    def generate(cls) -> tuple[str, str]:
        """Return (raw key, visible prefix). The raw key is shown once and never stored."""
        visible = secrets.token_hex(4)
        raw = f"{cls.KEY_PREFIX}_{visible}_{secrets.token_urlsafe(32)}"
        return raw, f"{cls.KEY_PREFIX}_{visible}"


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(value: str) -> str:
    """The canonical form of a sending domain: lower-case ASCII, internationalised names in their
    IDNA (punycode) form as DNS and mail headers carry them, no trailing dot. Raises ValueError with a
    message for the user when `value` is not a plain hostname with at least one dot."""
    value = (value or "").strip()
    if not value:
        raise ValueError("This field may not be blank.")
    if "://" in value or any(char in value for char in "/?#@:") or any(char.isspace() for char in value):
        raise ValueError("Enter a bare domain name such as 'mail.example.com' (no scheme, path, port or '@').")
    if value.endswith("."):  # the fully-qualified spelling of the same name
        value = value[:-1]
    try:
        ascii_name = value.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"'{value}' is not a valid domain name.") from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise ValueError("Enter a full domain name with a dot, such as 'example.com'.")
    if len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"'{value}' is not a valid domain name.")
    if labels[-1].isdigit():
        raise ValueError("Enter a domain name, not an IP address.")
    return ascii_name


class SendingDomain(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sending_domains")
    domain = models.CharField(max_length=253)
    verification_token = models.CharField(max_length=64, editable=False)
    verified = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.CharField(
        max_length=16,
        blank=True,
        choices=[("dns", "DNS check (verification and DKIM records)"), ("admin", "Marked by an admin")],
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_error = models.CharField(max_length=500, blank=True)
    # The last verify's result per record: {purpose: {"status", "message", "checked_at"}} (accounts.services).
    dns_checks = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "domain"], name="uniq_sending_domain_per_workspace")
        ]

    def __str__(self) -> str:
        return self.domain

    @property
    def verification_record(self) -> str:
        from django.conf import settings

        return f"{settings.SENDING_DOMAIN_TXT_PREFIX}{self.verification_token}"

    def mark_verified(self, *, by: str) -> None:
        self.verified = True
        self.verified_by = by
        self.verified_at = timezone.now()


class DkimKey(models.Model):
    """One DKIM key pair of a sending domain (docs/decisions/080). A domain signs with its one `active` key.
    Rotation adds a `pending` key with a new selector: it is listed in dns_records at once, and the verify
    check promotes it once DNS serves it, retiring the old key, so no message is ever signed with a key
    that is not yet published. The private key is stored encrypted (accounts.dkim_keys)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        RETIRED = "retired"

    id = models.BigAutoField(primary_key=True)
    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    private_key_encrypted = models.TextField(editable=False)
    public_key = models.TextField(editable=False, help_text="Base64 DER public key: the p= of the DNS record.")
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "DKIM key"
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="uniq_dkim_selector_per_domain"),
            # At most one signing key and one key waiting to be published per domain.
            models.UniqueConstraint(
                fields=["domain"], condition=models.Q(status="active"), name="uniq_active_dkim_key_per_domain"
            ),
            models.UniqueConstraint(
                fields=["domain"], condition=models.Q(status="pending"), name="uniq_pending_dkim_key_per_domain"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.domain_id} ({self.status})"


class IdempotencyRecord(models.Model):
    """One `Idempotency-Key` of a workspace and the first response sent for it (docs/decisions/023).

    The unique (workspace, key) constraint is the claim: of concurrent requests with one key exactly one
    inserts the row, and only that one runs. `created_at` doubles as the claim's fencing token: a request
    that took over an abandoned claim rewrote it, so the stale owner's final write matches no row."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        DONE = "done"

    MAX_KEY_LENGTH = 255

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the unique (workspace, key) index starts with it.
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=MAX_KEY_LENGTH)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of method, path with query and body.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The rendered JSON text, not jsonb: the replay is then byte for byte the first answer (jsonb would
    # reorder its keys).
    response_body = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="uniq_idempotency_key_per_workspace")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"

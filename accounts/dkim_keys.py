"""DKIM key material of sending domains (docs/decisions/080): generation, encryption at rest, the published
record, and the signing of finished message bytes.

Signing (`Signer.sign`) is RFC 6376 rsa-sha256 with relaxed/relaxed canonicalization, written here over
bytes the send path built, with the RSA step in OpenSSL through `cryptography`. dkimpy did it before
(docs/decisions/112): its parse of the message and its regex canonicalization were half of a signed
bulk worker's signing time. dkimpy stays the reference: the tests verify every signature with its
verifier, and `use_openssl_rsa(False)` (the bench's comparison) signs with dkimpy and its pure-Python RSA,
about 5.7 ms per 2048-bit signature here against 0.2 ms in OpenSSL (README, "Deliverability").
"""

import base64
import functools
import hashlib
import ipaddress
import re
import secrets
import threading
import time
from dataclasses import dataclass

import dkim as dkimpy
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

KEY_BITS = 2048  # RFC 8301 §3.2: at least 1024, 2048 recommended; 2048 still fits one TXT record
# What the signature covers: RFC 6376 §5.4.1's recommendations plus RFC 8058 §3.1 (List-Unsubscribe and
# List-Unsubscribe-Post must be signed for one-click to count) and the bulk headers. A header listed but
# absent from a message is not signed by dkimpy, so one list serves campaign and transactional mail.
SIGNED_HEADERS = (
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"mime-version",
    b"content-type", b"list-unsubscribe", b"list-unsubscribe-post", b"list-id", b"feedback-id",
)


class KeyDecryptionError(Exception):
    """The stored key cannot be decrypted: DKIM_KEY_ENCRYPTION_SECRET is not the one it was stored with."""


def _fernet() -> Fernet:
    # HKDF turns the setting (any length, possibly the SECRET_KEY) into the 32 bytes Fernet needs; the info
    # string keeps this key apart from anything else ever derived from the same secret.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"mailsched dkim private keys").derive(
        settings.DKIM_KEY_ENCRYPTION_SECRET.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_private_key(pem: bytes) -> str:
    return _fernet().encrypt(pem).decode("ascii")


def decrypt_private_key(token: str) -> bytes:
    try:
        return _fernet().decrypt(token.encode("ascii"))
    except InvalidToken:
        raise KeyDecryptionError(
            "The DKIM private key cannot be decrypted with DKIM_KEY_ENCRYPTION_SECRET (was it changed?)."
        ) from None


@dataclass(frozen=True)
class GeneratedKey:
    selector: str
    private_key_encrypted: str
    public_key: str  # base64 DER SubjectPublicKeyInfo: the p= of the DNS record (RFC 6376 §3.6.1)


def new_selector() -> str:
    # Date-stamped so an operator reading DNS sees which is newer; random so two rotations on one day differ.
    return f"ms{time.strftime('%Y%m')}{secrets.token_hex(3)}"


def generate_key() -> GeneratedKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return GeneratedKey(
        selector=new_selector(),
        private_key_encrypted=encrypt_private_key(pem),
        public_key=base64.b64encode(der).decode("ascii"),
    )


def dkim_record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def dkim_record_value(public_key: str) -> str:
    return f"v=DKIM1; k=rsa; p={public_key}"


_TAG = re.compile(r"\s*([a-zA-Z][a-zA-Z0-9_]*)\s*=\s*(.*?)\s*(?:;|$)", re.S)


def record_tags(record: str) -> dict[str, str]:
    """Tag=value pairs of a DKIM or DMARC record (RFC 6376 §3.2), names lower-cased."""
    return {name.lower(): value for name, value in _TAG.findall(record)}


def published_key_matches(record: str, public_key: str) -> bool:
    """Whether a published DKIM record carries our public key. Whitespace inside p= is allowed (§3.6.1):
    long keys are often split by DNS consoles."""
    tags = record_tags(record)
    if tags.get("v", "DKIM1") != "DKIM1" or tags.get("k", "rsa").lower() != "rsa":
        return False
    return re.sub(r"\s+", "", tags.get("p", "")) == public_key


def spf_mechanism() -> str:
    """The SPF mechanism that authorizes our mail server (SENDING_DOMAIN_SPF_MECHANISM, else from EMAIL_URL)."""
    if settings.SENDING_DOMAIN_SPF_MECHANISM:
        return settings.SENDING_DOMAIN_SPF_MECHANISM.strip()
    host = getattr(settings, "EMAIL_HOST", "") or "localhost"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"a:{host}"
    return f"ip{ip.version}:{ip}"


# --- signing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """One domain's active key, ready to sign. `pem` is the decrypted key dkimpy parses; `key` is the same
    key for OpenSSL."""

    domain: str
    selector: str
    pem: bytes
    key: rsa.RSAPrivateKey

    def sign(self, message: bytes) -> bytes:
        """`message` with a DKIM-Signature header in front (a=rsa-sha256, c=relaxed/relaxed, d=domain).
        Relaxed canonicalization survives the rewrapping and whitespace changes of relays (RFC 6376 §3.4)."""
        if _openssl_enabled:
            return self._sign(message, timestamp=int(time.time()))
        return self._sign_with_dkimpy(message)

    def _sign(self, message: bytes, *, timestamp: int) -> bytes:
        head, body = _split_message(message)
        fields = _header_fields(head)
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest())
        # RFC 6376 §5.4.2: a header that occurs n times is signed from the last instance up; each name in
        # h= once per instance. One absent from the message is not listed (dkimpy's behaviour too).
        present: dict[bytes, list[bytes]] = {}
        for name, raw in fields:
            present.setdefault(name, []).append(raw)
        signed: list[bytes] = []
        covered: list[bytes] = []
        for name in SIGNED_HEADERS:
            for raw in reversed(present.get(name, ())):
                signed.append(_relaxed_header(raw))
                covered.append(name)
        tags = [
            b"v=1", b"a=rsa-sha256", b"c=relaxed/relaxed", b"d=" + self.domain.encode("ascii"),
            b"s=" + self.selector.encode("ascii"), b"t=" + str(timestamp).encode("ascii"),
            b"h=" + b":".join(covered), b"bh=" + body_hash,
        ]  # fmt: skip
        unsigned = _folded(b"DKIM-Signature:", tags) + b"\r\n b="
        # §3.7: the selected headers, each canonicalized with its CRLF, then this header as it is sent but
        # with an empty b= and no CRLF; a verifier drops b='s value, folding included, the same way (§3.5).
        data = b"".join(signed) + _relaxed_header(unsigned)[:-2]
        signature = base64.b64encode(self.key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
        folded = b"\r\n ".join(signature[i : i + 72] for i in range(0, len(signature), 72))
        return unsigned + folded + b"\r\n" + message

    def _sign_with_dkimpy(self, message: bytes) -> bytes:
        header = dkimpy.sign(
            message,
            self.selector.encode("ascii"),
            self.domain.encode("ascii"),
            self.pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
            linesep=b"\r\n",
        )
        return header + message


_OPENSSL_KEYS: dict[int, rsa.RSAPrivateKey] = {}
_pure_python_sign = dkimpy.RSASSA_PKCS1_v1_5_sign


def _openssl_sign(digest, private_key: dict) -> bytes:
    """dkimpy's RSA step, for keys we loaded, in OpenSSL. Same input (the hash object dkimpy built over the
    canonical headers) and the same RFC 8017 RSASSA-PKCS1-v1_5 output; another key goes to dkimpy's own."""
    key = _OPENSSL_KEYS.get(private_key["modulus"])
    if key is None or digest.name != "sha256":
        return _pure_python_sign(digest, private_key)
    return key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))


# dkimpy parses the PEM key (base64 and ASN.1, in Python) on every signature: 6% of a bulk worker under
# py-spy. The parse is a pure function of the key's bytes, so each key is parsed once per process; dkimpy
# only reads the result. A rotated key has other bytes, so it is parsed afresh.
_parse_pem_private_key = functools.lru_cache(maxsize=64)(dkimpy.parse_pem_private_key)
dkimpy.parse_pem_private_key = _parse_pem_private_key


_openssl_enabled = True


def use_openssl_rsa(enabled: bool = True) -> None:
    """Sign with our signer and OpenSSL's RSA (the default), or with dkimpy and its pure-Python RSA (the
    bench's comparison). dkimpy calls the module-level name, so replacing it is the whole hook there."""
    global _openssl_enabled
    _openssl_enabled = enabled
    dkimpy.RSASSA_PKCS1_v1_5_sign = _openssl_sign if enabled else _pure_python_sign


# --- RFC 6376 canonicalization ---------------------------------------------------------------------------

_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_AT_LINE_END = re.compile(rb"[ \t]+(?=\r\n|$)")
_FOLD = re.compile(rb"\r\n(?=[ \t])")


def _folded(name: bytes, tags: list[bytes]) -> bytes:
    """`name` and its `tag=value;` list, folded where a line would pass 78 characters (RFC 5322 §2.1.1):
    before a tag, or inside h= after a colon. What relaxed canonicalization makes of the folds (a space) is
    what gets signed, since the caller signs this text canonicalized."""
    atoms: list[tuple[bytes, bytes]] = []  # (separator on the same line, text)
    for tag in tags:
        if tag.startswith(b"h="):
            names = tag.split(b":")
            atoms += [(b" " if i == 0 else b"", part + (b":" if i < len(names) - 1 else b";")) for i, part in
                      enumerate(names)]  # fmt: skip
        else:
            atoms.append((b" ", tag + b";"))
    lines, line = [], name
    for separator, text in atoms:
        if len(line) + len(separator) + len(text) > 78:
            lines.append(line)
            line, separator = b"", b" "  # the fold's whitespace
        line += separator + text
    lines.append(line)
    return b"\r\n".join(lines)


def _split_message(message: bytes) -> tuple[bytes, bytes]:
    """Header block (each field with its CRLF) and body; a message without a body is all header."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        return (message if message.endswith(b"\r\n") else message + b"\r\n"), b""
    return message[: end + 2], message[end + 4 :]


def _header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """[(lowercased name, the whole field as written, folding included)] in order (RFC 5322 §2.2.3)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + b"\r\n" + line)
        else:
            fields.append((line.split(b":", 1)[0].strip().lower(), line))
    return fields


def _relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 §3.4.2: name lowercased, unfolded, whitespace runs to one space, none around the colon or
    at the end; with its CRLF."""
    name, _, value = _FOLD.sub(b"", raw).partition(b":")
    return name.strip(b" \t").lower() + b":" + _WSP_RUN.sub(b" ", value).strip(b" \t") + b"\r\n"


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4: whitespace runs to one space, none at a line's end, no empty lines at the end, and a
    non-empty body ends with CRLF. Most built bodies have nothing to change but the end: checked first."""
    if b"\t" in body or b"  " in body or b" \r\n" in body or body.endswith(b" "):
        body = _WSP_AT_LINE_END.sub(b"", _WSP_RUN.sub(b" ", body))
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    if body == b"\r\n":
        return b""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body


use_openssl_rsa(True)


def signer_from(*, domain: str, selector: str, private_key_encrypted: str) -> Signer:
    pem = decrypt_private_key(private_key_encrypted)
    key = serialization.load_pem_private_key(pem, password=None)
    _OPENSSL_KEYS[key.private_numbers().public_numbers.n] = key
    return Signer(domain=domain, selector=selector, pem=pem, key=key)


class SignerCache:
    """Signers by (workspace, domain) for a while, so a batch decrypts and parses each key once, and a
    rotation or a deleted domain takes effect within `ttl` seconds in every worker."""

    def __init__(self, ttl: float = 60.0):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[float, Signer | None]] = {}

    def get(self, key: tuple, load) -> Signer | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        signer = load()
        with self._lock:
            self._entries[key] = (now + self.ttl, signer)
        return signer

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def fingerprint(public_key: str) -> str:
    """A short id of a public key for the admin (SHA-256 of the DER, first 16 hex digits)."""
    return hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]

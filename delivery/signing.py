"""DKIM signing of finished messages (docs/decisions/080): one function over the bytes the send path built,
for campaign and transactional mail alike, so the message is never built twice.

Only bytes handed to an SMTP server are signed here. An ESP backend (django-anymail) builds the message
itself from fields and signs it with the domain authentication set up at the ESP, so nothing goes through
this function on that path.
"""

from accounts.selectors import dkim_signer_for


def dkim_sign(raw: bytes, *, workspace_id, from_email: str) -> bytes:
    """`raw` with a DKIM-Signature of the sender's domain in front, or `raw` unchanged when the workspace has
    no such sending domain with a key, or when the relay signs (DKIM_SIGN_MESSAGES off)."""
    signer = dkim_signer_for(workspace_id=workspace_id, from_email=from_email)
    return signer.sign(raw) if signer is not None else raw

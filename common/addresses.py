"""Email address helpers every layer shares."""


def domain_of(email: str) -> str:
    """The domain part of an address, lower-cased ('' when there is no '@'). Domains are case-insensitive
    (RFC 5321 §2.4); the local part is left alone wherever it matters."""
    _, at, domain = (email or "").rpartition("@")
    return domain.lower() if at else ""

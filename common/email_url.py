"""EMAIL_URL → Django email settings, e.g. `smtp://127.0.0.1:1025`, `smtp+tls://user:pass@host:587`,
`smtps://user:pass@host:465`, `console:`, `locmem:`. EMAIL_BACKEND may still be set on its own (an
anymail ESP backend, for instance) and wins."""

import os
from urllib.parse import unquote, urlsplit


def email_settings_from_url(url: str) -> dict:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    settings: dict = {"EMAIL_TIMEOUT": 30}
    if scheme == "console":
        settings["EMAIL_BACKEND"] = "django.core.mail.backends.console.EmailBackend"
    elif scheme == "locmem":
        settings["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    elif scheme in {"smtp", "smtp+tls", "smtps", "smtp+ssl"}:
        settings.update(
            EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
            EMAIL_HOST=parts.hostname or "127.0.0.1",
            EMAIL_PORT=parts.port or (465 if scheme in {"smtps", "smtp+ssl"} else 25),
            EMAIL_HOST_USER=unquote(parts.username or ""),
            EMAIL_HOST_PASSWORD=unquote(parts.password or ""),
            EMAIL_USE_TLS=scheme == "smtp+tls",
            EMAIL_USE_SSL=scheme in {"smtps", "smtp+ssl"},
        )
    else:
        raise ValueError(f"EMAIL_URL scheme {scheme!r} is not supported (smtp, smtp+tls, smtps, console, locmem).")
    if os.environ.get("EMAIL_BACKEND"):
        settings["EMAIL_BACKEND"] = os.environ["EMAIL_BACKEND"]
    return settings

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.core.exceptions import ValidationError


def is_valid_timezone(name: str) -> bool:
    if not isinstance(name, str) or not name or "\x00" in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    # ZoneInfo also loads files by relative path (e.g. "posixrules"); accept only real zone keys.
    return name in _zone_names()


_ZONES: set[str] | None = None


def _zone_names() -> set[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = set(available_timezones())
    return _ZONES


def validate_timezone_name(value: str) -> None:
    if not is_valid_timezone(value):
        raise ValidationError(f"'{value}' is not a known IANA timezone (e.g. 'Europe/London').")

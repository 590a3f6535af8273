"""Field rules that several interfaces share (API serializers, admin forms, the CSV import, services): each
rule is written once here and called from all of them.

`single_line` is the rule for every value that ends up in a mail header (display names, subjects,
addresses, custom header values). RFC 5322 §2.2 makes a header field one line ended by CRLF, and §3.2.2
leaves folding to whoever writes the message (delivery.mime): a line break in a value would end its header
and start another one (`"Shop\\r\\nBcc: everyone@example.org"`), so such values are refused where they enter,
with a 400 naming the field, instead of being stored and sent. See docs/decisions/013-header-injection.md.
"""

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError

from common import errors

# CR, LF, NUL and every other ASCII control character except TAB (header whitespace), DEL, and the Unicode
# line breaks (NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR) that str.splitlines() and mail clients also break
# lines on. The MIME layer refuses the ASCII ones too (delivery.mime.HeaderInjection); refusing a little more
# here means nothing accepted at the door can fail at send time.
_NOT_SINGLE_LINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")

SINGLE_LINE_MESSAGE = "Must be a single line: CR, LF, NUL and other control characters are not allowed."


def is_single_line(value: str) -> bool:
    return _NOT_SINGLE_LINE.search(value) is None


def validate_single_line(value: Any) -> None:
    """The rule as a Django validator: for form fields, model fields and DRF fields alike."""
    if isinstance(value, str) and not is_single_line(value):
        raise DjangoValidationError(SINGLE_LINE_MESSAGE, code="single_line")


def single_line(value: str, *, field: str) -> str:
    """The rule for services: a 400 VALIDATION_ERROR naming `field`."""
    if isinstance(value, str) and not is_single_line(value):
        raise errors.ValidationError.for_field(field, SINGLE_LINE_MESSAGE)
    return value


def single_line_problems(data: Mapping[str, Any], fields: Iterable[str]) -> dict[str, list[str]]:
    """{field: [message]} for each of `fields` present in `data` that breaks the rule, to merge with a
    service's other problems into one 400."""
    return {
        name: [SINGLE_LINE_MESSAGE]
        for name in fields
        if isinstance(data.get(name), str) and not is_single_line(data[name])
    }

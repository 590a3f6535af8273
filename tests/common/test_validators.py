"""common.validators: the single-line rule every header-bound field shares."""

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError

from common import errors
from common.validators import (
    SINGLE_LINE_MESSAGE,
    is_single_line,
    single_line,
    single_line_problems,
    validate_single_line,
)

BREAKS = ["\r\n", "\n", "\r", "\x00", "\x0b", "\x0c", "\x1e", "\x7f", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("value", ["", "Ana", "Ana\tLima", "Café Ünïcode", "Spring sale: 50% off!", "a\u00a0b"])
def test_ordinary_text_is_a_single_line(value):
    assert is_single_line(value)


@pytest.mark.parametrize("char", BREAKS)
def test_a_line_break_or_control_character_is_not_a_single_line(char):
    assert not is_single_line(f"Shop{char}Reply-To: attacker@evil.example")


def test_the_django_validator_raises_a_django_validation_error():
    with pytest.raises(DjangoValidationError) as caught:
        validate_single_line("Eve\r\nX-Injected: yes")
    assert caught.value.messages == [SINGLE_LINE_MESSAGE]


def test_the_service_check_raises_a_400_naming_the_field():
    with pytest.raises(errors.ValidationError) as caught:
        single_line("Eve\nX-Injected: yes", field="first_name")
    assert caught.value.details == {"first_name": [SINGLE_LINE_MESSAGE]}


def test_problems_name_only_the_bad_fields_that_are_present():
    data = {"subject": "Hi\r\nBcc: x@evil.example", "from_name": "Shop", "reply_to": None}
    assert single_line_problems(data, ("subject", "from_name", "reply_to", "from_email")) == {
        "subject": [SINGLE_LINE_MESSAGE]
    }

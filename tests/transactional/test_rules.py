"""The rules of a send request as a whole (TransactionalMessage.request_problems): a body, at least one `to`,
at most TRANSACTIONAL_MAX_RECIPIENTS in to, cc and bcc together. The API and transactional_send agree."""

import pytest

from common import errors
from transactional.models import TransactionalMessage
from transactional.services import transactional_send

from .conftest import FROM, body, post

pytestmark = pytest.mark.django_db


def _addresses(n: int, prefix: str) -> list[dict]:
    return [{"email": f"{prefix}{i}@example.org", "name": ""} for i in range(n)]


def _service_refusal(workspace, **overrides) -> dict:
    data = {
        "workspace": workspace,
        "priority": "high",
        "sender": {"email": FROM, "name": ""},
        "to": _addresses(1, "to"),
        "subject": "Reset your password",
        "text": "Use this link.",
        **overrides,
    }
    with pytest.raises(errors.ValidationError) as refused:
        transactional_send(**data)
    return refused.value.details


def _api_refusal(api, **overrides) -> dict:
    response = post(api, body(**overrides))
    assert response.status_code == 400, response.content
    return response.json()["error"]["details"]


CASES = {
    "too many recipients together": (
        {"to": _addresses(30, "to"), "cc": _addresses(11, "cc"), "bcc": _addresses(10, "bcc")},
        {"to": ["At most 50 recipients in to, cc and bcc together; this request has 51."]},
    ),
    "too many in to alone": (
        {"to": _addresses(51, "to")},
        {"to": ["At most 50 recipients in to, cc and bcc together; this request has 51."]},
    ),
    "no to": ({"to": []}, {"to": ["Give at least one address in to."]}),
    "no body": ({"html": "", "text": ""}, {"html": ["Give html, text or both."]}),
    "white space is no body": ({"html": " \n", "text": "  "}, {"html": ["Give html, text or both."]}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_api_and_the_service_refuse_alike(api, workspace, domain, case):
    overrides, expected = CASES[case]
    assert _api_refusal(api, **overrides) == expected
    assert _service_refusal(workspace, **overrides) == expected
    assert not TransactionalMessage.objects.exists()


def test_the_limit_is_the_setting_everywhere(api, workspace, domain, settings):
    settings.TRANSACTIONAL_MAX_RECIPIENTS = 60
    assert post(api, body(to=_addresses(55, "to"))).status_code == 202
    settings.TRANSACTIONAL_MAX_RECIPIENTS = 3
    expected = {"to": ["At most 3 recipients in to, cc and bcc together; this request has 4."]}
    assert _api_refusal(api, to=_addresses(2, "to"), bcc=_addresses(2, "bcc")) == expected
    assert _service_refusal(workspace, to=_addresses(2, "to"), bcc=_addresses(2, "bcc")) == expected


def test_a_body_and_a_missing_to_are_reported_together():
    assert TransactionalMessage.request_problems(to=[], cc=[], bcc=[], html="", text="") == {
        "to": ["Give at least one address in to."],
        "html": ["Give html, text or both."],
    }

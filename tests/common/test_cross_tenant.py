"""Tenant isolation over the whole URLconf (docs/architecture.md#tenancy): every route under /api/v1/, found by
walking the resolver rather than from a list kept by hand, called with a second workspace's key and the first
workspace's ids in its path parameters, for every method the view allows. The answer is a 404 (or, for a list,
an empty page), never a 500, and never carries anything of the first workspace."""

import uuid
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from audience.models import ContactImport
from reports.models import ReportExport
from tests.factories import (
    CampaignFactory,
    CampaignRunFactory,
    ContactFactory,
    EventFactory,
    LabelFactory,
    SegmentFactory,
    SendingDomainFactory,
    SuppressionFactory,
    TemplateFactory,
    ThrottleFactory,
    WebhookAttemptFactory,
)

PREFIX = "api/v1/"
PUBLIC = {"schema", "swagger-ui"}  # the schema and its viewer: no workspace data behind them

# Router routes name their id `pk`; which object it is follows from the route's resource prefix.
PK_RESOURCE = {
    "contacts": "contact",
    "contacts/imports": "contact_import",
    "labels": "label",
    "segments": "segment",
    "suppressions": "suppression",
    "sending-domains": "sending_domain",
    "templates": "template",
    "campaigns": "campaign",
    "throttles": "throttle",
    "webhooks": "webhook_endpoint",
}
# Every other path parameter names its object itself.
PARAMETER_RESOURCE = {
    "message_id": "message",
    "batch_id": "batch",
    "attempt_id": "webhook_attempt",
    "export_id": "report_export",
}
# Report routes name their objects in the query: the first workspace's, then a 404 is expected. A category is
# a name, not an object: the first workspace's campaign has one, another workspace's answer counts none.
QUERIES = {
    "report-basic": {"campaign_id": "campaign"},
    "report-link": {"campaign_id": "campaign", "run_id": "run"},
    "report-open-time": {"campaign_id": "campaign"},
    "report-label": {"label": "label"},
}

# A write that parses its body before it looks the object up gets a body it would accept, so that the lookup
# (and with it the tenancy) is what answers.
BODIES = {
    "campaign-schedule": {"schedule_type": "immediate"},
    "contact-detail": {"email": "someone@example.org"},
    "label-detail": {"name": "renamed"},
    "segment-detail": {"name": "renamed", "rules": {"all": [{"attribute": "plan", "op": "eq", "value": "pro"}]}},
    "suppression-detail": {"email": "someone@example.org"},
    "throttle-detail": {"scope": "workspace", "rate_per_second": 5},
    "template-detail": {"name": "renamed", "html": "<p>Hi</p>"},
    "webhook-detail": {"url": "http://127.0.0.1:9/renamed", "event_types": ["*"]},
}


def api_routes(patterns=None, prefix: str = ""):
    """(route, URLPattern) for every pattern of the URLconf, with the prefixes of the includes above it."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern).lstrip("^").rstrip("$")
        if isinstance(entry, URLResolver):
            yield from api_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def allowed_methods(entry: URLPattern) -> list[str]:
    callback = entry.callback
    view_class = callback.cls
    if getattr(callback, "actions", None):  # a viewset route: the methods its router mapped
        methods = set(callback.actions) | {"options"}
    else:
        methods = {name for name in view_class.http_method_names if hasattr(view_class, name)}
    return sorted(methods & set(view_class.http_method_names) - {"head"})


def resource_of_pk(route: str) -> str:
    resource = route.removeprefix(PREFIX).split("/")[0]
    if route.removeprefix(PREFIX).startswith("contacts/imports/"):
        resource = "contacts/imports"
    return PK_RESOURCE[resource]


def fill(entry: URLPattern, route: str, ids: dict) -> str:
    """The route's path with the first workspace's id for each parameter, through its own converters."""
    path = "/" + route
    for name in entry.pattern.regex.groupindex:
        resource = resource_of_pk(route) if name == "pk" else PARAMETER_RESOURCE.get(name)
        assert resource in ids, f"no first-workspace id for parameter {name!r} of {route}: add one to the test"
        path = _substitute(path, name, str(ids[resource]))
    return path


def _substitute(path: str, name: str, value: str) -> str:
    converter = f"<uuid:{name}>"
    if converter in path:
        return path.replace(converter, value)
    start = path.index(f"(?P<{name}>")
    depth, end = 0, start
    for end in range(start, len(path)):
        depth += {"(": 1, ")": -1}.get(path[end], 0)
        if depth == 0:
            break
    return path[:start] + value + path[end + 1 :]


@pytest.fixture
def first(workspace, api):
    """The first workspace with an object behind every kind of id the API takes."""
    label = LabelFactory(workspace=workspace, name="first-label")
    contact = ContactFactory(workspace=workspace, email="first-contact@example.org", labels=[label])
    campaign = CampaignFactory(workspace=workspace, name="first-campaign", category="shared")
    run = CampaignRunFactory(campaign=campaign, workspace=workspace)
    SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)
    sent = api.post(
        "/api/v1/transactional?priority=high",
        {
            "from": {"email": "alerts@mail.example.com"},
            "to": [{"email": "first-recipient@example.org"}],
            "subject": "first-subject",
            "html": "<p>first</p>",
            "scheduled_at": (timezone.now() + timedelta(hours=1)).isoformat(),
        },
        format="json",
    )
    assert sent.status_code == 202, sent.content
    ids = {
        "label": label.pk,
        "contact": contact.pk,
        "campaign": campaign.pk,
        "run": run.pk,
        "segment": SegmentFactory(workspace=workspace, name="first-segment").pk,
        "suppression": SuppressionFactory(workspace=workspace, email="first-suppressed@example.org").pk,
        "sending_domain": workspace.sending_domains.get().pk,
        "template": TemplateFactory(workspace=workspace, name="first-template").pk,
        "contact_import": ContactImport.objects.create(workspace=workspace, filename="first.csv").pk,
        "throttle": ThrottleFactory(workspace=workspace, domain="first-throttle.example.org").pk,
        "message": sent.json()["message_id"],
        "batch": sent.json()["batch_id"],
        "report_export": ReportExport.objects.create(
            workspace=workspace, campaign_id=campaign.pk, expires_at=timezone.now() + timedelta(days=1)
        ).pk,
    }
    attempt = WebhookAttemptFactory(endpoint__workspace=workspace, endpoint__url="http://first-hook.example.com/in")
    ids.update(webhook_endpoint=attempt.endpoint_id, webhook_attempt=attempt.pk)
    EventFactory(workspace=workspace, campaign_id=campaign.pk, run_id=run.pk, email=contact.email)
    return ids


def assert_nothing_of(response, ids: dict, label: str) -> None:
    body = response.content.decode()
    for value in [*map(str, ids.values()), "first-", "mail.example.com"]:
        assert value not in body, f"{label} answered with the first workspace's {value!r}: {body[:300]}"


def test_every_api_route_hides_the_first_workspace_from_the_second(first, other_api):
    routes = [(route, entry) for route, entry in api_routes() if route.startswith(PREFIX)]
    routes = [(route, entry) for route, entry in routes if entry.name not in PUBLIC]
    assert len(routes) > 20  # the walk found the API, not an empty URLconf
    nobody = {resource: uuid.uuid4() for resource in first}  # ids that name nothing anywhere
    checked = 0
    for route, entry in routes:
        path = fill(entry, route, first)
        has_id = bool(entry.pattern.regex.groupindex)
        for method in allowed_methods(entry):
            label = f"{method.upper()} {path}"
            if not has_id and method != "get":
                continue  # creates name no existing object; their ids in bodies are the services' tests
            if method == "get" and (entry.name in QUERIES or entry.name == "report-category"):
                query = {key: str(first[resource]) for key, resource in QUERIES.get(entry.name, {}).items()}
                response = other_api.get(path, query or {"category": "shared"})
                assert response.status_code == (404 if query else 200), (label, response.content[:300])
                assert_nothing_of(response, first, label)
                checked += 1
                continue
            response = getattr(other_api, method)(path, BODIES.get(entry.name, {}), format="json")
            assert response.status_code < 500, (label, response.content[:300])
            assert_nothing_of(response, first, label)
            if method == "options":
                # Metadata only; the same as for an id that names nothing at all.
                missing = other_api.options(fill(entry, route, nobody))
                assert response.status_code == 200 and response.json() == missing.json(), label
            elif has_id:
                assert response.status_code == 404, (label, response.content[:300])
                assert response.json()["error"]["code"] == "RESOURCE_NOT_FOUND", label
            else:
                assert response.status_code == 200, (label, response.content[:300])
                assert response.json()["count"] == 0 and response.json()["results"] == [], label
            checked += 1
    assert checked > 50

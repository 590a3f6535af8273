"""The preview shows what is sent (delivery.content is the one message builder): for every combination of
a campaign's own content and its template's, the subject, html and text of the preview equal those of the
message the real send path hands to the SMTP sink."""

import pytest

from campaigns.models import Campaign
from campaigns.selectors import campaign_preview
from delivery.services import delivery_send_batch
from tests.factories import CampaignFactory, CampaignRunFactory, ContactFactory, DeliveryFactory, TemplateFactory

TEMPLATE = {"subject": "T: {{ first_name }}", "html": "<p>Template html {{ first_name }}</p>", "text": "Template text"}
OWN_HTML = "<p>Own html {{ first_name }}</p>"
OWN_TEXT = "Own text {{ first_name }}"

COMBINATIONS = {
    "own html and text": {"template": False, "html": OWN_HTML, "text": OWN_TEXT},
    "template only": {"template": True, "html": "", "text": ""},
    "template plus own text": {"template": True, "html": "", "text": OWN_TEXT},
    "template plus own html": {"template": True, "html": OWN_HTML, "text": ""},
}


def _parts(message) -> dict:
    def body(kind: str) -> str:
        part = message.get_body(preferencelist=(kind,))
        return part.get_content().replace("\r\n", "\n") if part is not None else ""

    return {"subject": message["Subject"], "html": body("html"), "text": body("plain")}


@pytest.mark.parametrize("combination", list(COMBINATIONS))
def test_preview_equals_the_sent_message(workspace, sink, combination):
    spec = COMBINATIONS[combination]
    campaign = CampaignFactory(
        workspace=workspace,
        status=Campaign.Status.SENDING,
        subject="" if spec["template"] else "Own: {{ first_name }}",
        preheader="Inside for {{ first_name }}",
        html=spec["html"],
        text=spec["text"],
        template=TemplateFactory(workspace=workspace, **TEMPLATE) if spec["template"] else None,
        tracking={"opens": False, "clicks": False},
    )
    contact = ContactFactory(workspace=workspace, first_name="Ana")
    delivery = DeliveryFactory(run=CampaignRunFactory(campaign=campaign), contact=contact)

    preview = campaign_preview(workspace=workspace, campaign=campaign, contact_id=contact.id)
    delivery_send_batch(delivery_ids=[delivery.id])

    [received] = sink.messages
    sent = _parts(received.message)
    assert {key: preview[key].replace("\r\n", "\n") for key in ("subject", "html", "text")} == sent


def test_a_template_with_html_and_a_campaign_with_its_own_text_sends_both(workspace, sink):
    # The drift this guards against: the old send path took the campaign's (empty) html over the template's.
    campaign = CampaignFactory(
        workspace=workspace,
        status=Campaign.Status.SENDING,
        subject="S",
        html="",
        text="Own text",
        template=TemplateFactory(workspace=workspace, **TEMPLATE),
        tracking={"opens": False, "clicks": False},
    )
    delivery = DeliveryFactory(run=CampaignRunFactory(campaign=campaign))
    delivery_send_batch(delivery_ids=[delivery.id])

    sent = _parts(sink.messages[0].message)
    assert "Template html" in sent["html"]
    assert sent["text"].strip() == "Own text"

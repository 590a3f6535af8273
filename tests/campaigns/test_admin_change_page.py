"""What the campaign's change page shows: readiness only where it applies, the audience by name with its
count, a progress bar, the send plan as a chart, and the rendered message in a sandboxed frame."""

import html

import pytest

from campaigns.models import Campaign
from tests.campaigns.test_admin import _change_form_data
from tests.factories import CampaignRunFactory, ContactFactory, SegmentFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/campaigns/campaign/"


# admin_client is pytest-django's: a logged-in superuser.


def _page(admin_client, campaign, **params) -> str:
    response = admin_client.get(f"{CHANGELIST}{campaign.pk}/change/", params)
    assert response.status_code == 200
    return response.content.decode()


def test_a_cancelled_campaign_does_not_say_ready_to_send(admin_client, ready_campaign):
    Campaign.objects.filter(pk=ready_campaign.pk).update(status=Campaign.Status.CANCELLED)
    page = _page(admin_client, ready_campaign)
    assert "Ready to send" not in page
    assert 'class="readiness"' not in page


def test_a_draft_shows_its_readiness(admin_client, ready_campaign):
    assert 'data-can-send="true"' in _page(admin_client, ready_campaign)


def test_a_sent_campaign_shows_its_audience_by_name_not_as_ids(admin_client, ready_campaign, customers):
    Campaign.objects.filter(pk=ready_campaign.pk).update(status=Campaign.Status.SENT)
    page = _page(admin_client, ready_campaign)
    assert "Labels: customers" in page
    assert str(customers.pk) not in page


def test_the_audience_names_segments_and_exclusions_with_the_recipient_count(
    admin_client, ready_campaign, customers, workspace
):
    ContactFactory.create_batch(2, workspace=workspace, labels=[customers])
    vip = SegmentFactory(workspace=workspace, name="VIP")
    ready_campaign.audience = {**ready_campaign.audience, "exclude_segments": [str(vip.pk)]}
    ready_campaign.save()
    page = _page(admin_client, ready_campaign)
    count = ready_campaign.workspace.contacts.filter(labels=customers).count()
    assert "Except segments: VIP" in page
    assert f'data-count="{count}"' in page
    assert f"{count} sendable recipients" in page


def test_progress_is_a_bar_of_the_latest_run(admin_client, ready_campaign):
    Campaign.objects.filter(pk=ready_campaign.pk).update(status=Campaign.Status.SENDING)
    CampaignRunFactory(campaign=ready_campaign, total=8, sent=3, failed=1)
    page = _page(admin_client, ready_campaign)
    assert 'class="ms-progress" data-percent="50"' in page
    assert 'aria-valuenow="50"' in page
    assert "4 of 8" in page


def test_the_send_plan_is_an_svg_histogram_with_one_bar_per_hour(admin_client, ready_campaign, workspace, customers):
    ContactFactory(workspace=workspace, labels=[customers], timezone="Asia/Jakarta")
    ready_campaign.recipient_local_time = True
    ready_campaign.scheduled_at = ready_campaign.created_at.replace(year=2030)
    ready_campaign.save()
    page = _page(admin_client, ready_campaign)
    svg = page.split('<svg class="ms-histogram"')[1].split("</svg>")[0]
    assert svg.count('<rect class="bar"') >= 2  # two zones, hours apart: bars between them are drawn (empty)


def test_the_preview_renders_for_the_chosen_contact_in_a_sandboxed_srcdoc_frame(
    admin_client, ready_campaign, workspace, customers
):
    ann = ContactFactory(workspace=workspace, labels=[customers], first_name="Ann")
    page = _page(admin_client, ready_campaign, preview_contact=str(ann.pk))
    frame = page.split('<iframe class="preview-html"')[1].split(">")[0]
    assert " sandbox " in frame  # no allow-scripts, no allow-same-origin
    assert html.unescape(frame.split('srcdoc="')[1].split('"')[0]) == "<p>Hello Ann</p>"
    assert "Hello Ann" in page.split('class="ms-subject preview-subject">')[1]


def test_the_preview_without_a_contact_uses_the_sample_data(admin_client, ready_campaign):
    page = _page(admin_client, ready_campaign)
    assert "Hello Jane" in page.split('class="ms-subject preview-subject">')[1]


def test_a_script_in_the_message_stays_inert_inside_the_frame(admin_client, ready_campaign):
    ready_campaign.html = '<p>Hi</p><script>parent.document.title="owned"</script>'
    ready_campaign.save()
    page = _page(admin_client, ready_campaign)
    assert "<script>parent" not in page  # only escaped, inside srcdoc
    assert "&lt;script&gt;parent" in page.split('<iframe class="preview-html"')[1]


def test_another_workspaces_contact_is_refused_in_words(admin_client, ready_campaign, other_workspace):
    stranger = ContactFactory(workspace=other_workspace)
    page = _page(admin_client, ready_campaign, preview_contact=str(stranger.pk))
    assert "No contact with this id in this workspace." in page
    assert '<iframe class="preview-html"' not in page


def test_a_template_error_in_the_preview_is_shown_not_raised(admin_client, ready_campaign):
    Campaign.objects.filter(pk=ready_campaign.pk).update(html="{{ 1 / 0 }}")
    page = _page(admin_client, ready_campaign)
    assert 'class="ms-error preview-error"' in page


def test_the_audience_is_chosen_by_name_among_the_workspaces_labels(admin_client, ready_campaign, other_workspace):
    from tests.factories import LabelFactory

    LabelFactory(workspace=other_workspace, name="their-list")
    page = _page(admin_client, ready_campaign)
    choices = page.split('name="include_labels"')[1].split("</select>")[0]
    assert ">customers</option>" in choices
    assert "their-list" not in choices


def test_choosing_a_segment_stores_its_id_in_the_audience(admin_client, ready_campaign, workspace, customers):
    vip = SegmentFactory(workspace=workspace, name="VIP")
    form = _change_form_data(ready_campaign, include_segments=[str(vip.pk)])
    response = admin_client.post(f"{CHANGELIST}{ready_campaign.pk}/change/", form)
    assert response.status_code == 302
    ready_campaign.refresh_from_db()
    assert ready_campaign.audience == {
        "include_labels": [str(customers.pk)],
        "exclude_labels": [],
        "include_segments": [str(vip.pk)],
        "exclude_segments": [],
    }


def test_the_live_count_counts_an_unsaved_choice_of_labels(admin_client, ready_campaign, workspace, other_workspace):
    from tests.factories import LabelFactory

    vip = LabelFactory(workspace=workspace, name="vip")
    ContactFactory.create_batch(2, workspace=workspace, labels=[vip])
    foreign = LabelFactory(workspace=other_workspace)
    ContactFactory(workspace=other_workspace, labels=[foreign])
    url = f"{CHANGELIST}{ready_campaign.pk}/recipient-count/"
    assert admin_client.get(url, {"include_labels": [str(vip.pk)]}).json() == {"count": 2}
    assert admin_client.get(url, {"include_labels": [str(foreign.pk), "nope"]}).json() == {"count": 0}

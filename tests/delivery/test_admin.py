from delivery.models import Throttle
from tests.factories import DeliveryFactory, ThrottleFactory


def test_delivery_admin_lists_and_shows_but_offers_no_edit(admin_client, run):
    delivery = DeliveryFactory(run=run, status="sent")
    assert delivery.email.encode() in admin_client.get("/admin/delivery/delivery/").content
    page = admin_client.get(f"/admin/delivery/delivery/{delivery.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.get("/admin/delivery/delivery/add/").status_code == 403


def test_throttle_admin_adds_a_domain_throttle_through_the_service(admin_client, workspace):
    response = admin_client.post(
        "/admin/delivery/throttle/add/",
        {"workspace": workspace.pk, "scope": "recipient_domain", "domain": "Gmail.COM", "rate_per_second": "50"},
    )
    assert response.status_code == 302
    assert list(Throttle.objects.values_list("domain", "rate_per_second")) == [("gmail.com", 50.0)]


def test_throttle_admin_sets_a_warmup_ramp(admin_client, workspace):
    admin_client.post(
        "/admin/delivery/throttle/add/",
        {
            "workspace": workspace.pk,
            "scope": "sending_domain",
            "domain": "mail.example.com",
            "warmup_started_on": "2026-12-01",
            "warmup_daily_caps": "50, 100, 200",
        },
    )
    assert list(Throttle.objects.values_list("warmup_daily_caps", flat=True)) == [[50, 100, 200]]


def test_throttle_admin_refuses_a_warmup_on_a_recipient_domain_on_its_field(admin_client, workspace):
    response = admin_client.post(
        "/admin/delivery/throttle/add/",
        {
            "workspace": workspace.pk,
            "scope": "recipient_domain",
            "domain": "gmail.com",
            "warmup_started_on": "2026-12-01",
            "warmup_daily_caps": "50",
        },
    )
    assert response.status_code == 200
    assert "sending_domain" in str(response.context["adminform"].form.errors)
    assert not Throttle.objects.exists()


def test_throttle_admin_refuses_a_second_throttle_for_the_same_domain(admin_client, workspace):
    ThrottleFactory(workspace=workspace, domain="gmail.com")
    response = admin_client.post(
        "/admin/delivery/throttle/add/",
        {"workspace": workspace.pk, "scope": "recipient_domain", "domain": "gmail.com", "rate_per_second": "5"},
    )
    assert response.status_code == 200
    assert Throttle.objects.count() == 1

from tests.factories import DeliveryFactory


def test_delivery_admin_lists_and_shows_but_offers_no_edit(admin_client, run):
    delivery = DeliveryFactory(run=run, status="sent")
    assert delivery.email.encode() in admin_client.get("/admin/delivery/delivery/").content
    page = admin_client.get(f"/admin/delivery/delivery/{delivery.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.get("/admin/delivery/delivery/add/").status_code == 403

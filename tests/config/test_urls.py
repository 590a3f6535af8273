import re

import pytest


@pytest.mark.parametrize("debug", [True, False])
def test_an_unknown_api_path_is_the_404_envelope_with_debug_on_or_off(client, settings, debug):
    settings.DEBUG = debug
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "RESOURCE_NOT_FOUND"


def test_a_write_to_an_unknown_api_path_is_a_404_not_a_csrf_403(client, settings):
    settings.DEBUG = True
    response = client.patch("/api/v1/campaigns/%C2%84", data="{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "RESOURCE_NOT_FOUND"


def test_swagger_ui_loads_its_assets_from_this_server_not_a_cdn(client):
    page = client.get("/api/v1/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert assets, page
    assert all(asset.startswith("/static/drf_spectacular_sidecar/") for asset in assets), assets
    served = client.get(assets[0])
    assert served.status_code == 200
    assert b"".join(served.streaming_content if served.streaming else [served.content])

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from accounts.models import SendingDomain
from tests.accounts.dns_stub import NO_ANSWER, NXDOMAIN, TIMEOUT, published_zone, stub_resolver, stub_zone, txt
from tests.factories import SendingDomainFactory

URL = "/api/v1/sending-domains"

pytestmark = pytest.mark.django_db


def test_create_returns_the_domain_and_its_txt_record(api):
    response = api.post(URL, {"domain": "Mail.Example.COM"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["domain"] == "mail.example.com"
    assert body["verified"] is False
    assert body["verified_at"] is None
    assert body["last_checked_at"] is None
    assert body["last_check_error"] == ""
    assert body["created_at"].endswith("Z")
    token = SendingDomain.objects.get(pk=body["id"]).verification_token
    assert body["verification_record"] == f"mailsched-verification={token}"


def test_each_domain_gets_its_own_random_token(api):
    first = api.post(URL, {"domain": "a.example.com"}, format="json").json()
    second = api.post(URL, {"domain": "b.example.com"}, format="json").json()
    assert first["verification_record"] != second["verification_record"]
    assert len(first["verification_record"]) > len("mailsched-verification=") + 20


def test_internationalised_domain_is_stored_in_idna_form(api):
    response = api.post(URL, {"domain": "bücher.example"}, format="json")
    assert response.status_code == 201
    assert response.json()["domain"] == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "domain",
    ["https://example.com", "example.com/path", "localhost", "user@example.com", "exa mple.com", "-bad.example.com",
     "10.0.0.1", "example.com:25", "", "a" * 64 + ".example.com"],
)
def test_invalid_domain_is_400_naming_the_field(api, domain):
    response = api.post(URL, {"domain": domain}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "domain" in response.json()["error"]["details"]


def test_duplicate_domain_in_the_workspace_is_400(api):
    api.post(URL, {"domain": "example.com"}, format="json")
    response = api.post(URL, {"domain": "EXAMPLE.com."}, format="json")
    assert response.status_code == 400
    assert "already" in response.json()["error"]["details"]["domain"][0]


def test_same_domain_in_two_workspaces_is_allowed(api, other_api):
    assert api.post(URL, {"domain": "example.com"}, format="json").status_code == 201
    assert other_api.post(URL, {"domain": "example.com"}, format="json").status_code == 201


def test_unknown_input_field_is_400(api):
    response = api.post(URL, {"domain": "example.com", "verified": True}, format="json")
    assert response.status_code == 400
    assert not SendingDomain.objects.exists()


def test_list_shows_only_the_workspace_domains(api, workspace, other_workspace):
    mine = SendingDomainFactory(workspace=workspace)
    SendingDomainFactory(workspace=other_workspace)
    body = api.get(URL).json()
    assert body["count"] == 1
    assert [item["id"] for item in body["results"]] == [str(mine.id)]


def test_read_returns_the_domain(api, workspace):
    domain = SendingDomainFactory(workspace=workspace)
    response = api.get(f"{URL}/{domain.id}")
    assert response.status_code == 200
    assert response.json()["domain"] == domain.domain


def test_another_workspace_domain_is_404_for_read_verify_and_delete(api, other_workspace, monkeypatch):
    looked_up = stub_resolver(monkeypatch, answer=txt("anything"))
    domain = SendingDomainFactory(workspace=other_workspace)
    assert api.get(f"{URL}/{domain.id}").status_code == 404
    assert api.post(f"{URL}/{domain.id}/verify").status_code == 404
    assert api.delete(f"{URL}/{domain.id}").status_code == 404
    assert looked_up == []
    assert SendingDomain.objects.filter(pk=domain.pk).exists()


def test_delete_removes_the_domain(api, workspace):
    domain = SendingDomainFactory(workspace=workspace)
    assert api.delete(f"{URL}/{domain.id}").status_code == 204
    assert not SendingDomain.objects.filter(pk=domain.pk).exists()


def test_domain_cannot_be_edited(api, workspace):
    domain = SendingDomainFactory(workspace=workspace)
    response = api.patch(f"{URL}/{domain.id}", {"domain": "other.example.com"}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_verify_with_the_verification_and_dkim_records_present_marks_verified(api, workspace, monkeypatch):
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    zone = published_zone(domain)
    zone["example.com"].insert(0, "v=spf1 -all")
    looked_up = stub_zone(monkeypatch, zone)
    response = api.post(f"{URL}/{domain.id}/verify")
    assert response.status_code == 200
    body = response.json()
    assert body["verified"] is True
    assert body["verified_by"] == "dns"
    assert body["verified_at"] is not None
    assert body["last_checked_at"] is not None
    assert body["last_check_error"] == ""
    selector = domain.dkim_keys.get().selector
    assert looked_up == ["example.com", f"{selector}._domainkey.example.com", "_dmarc.example.com"]


def test_verify_without_the_record_is_200_unverified_with_the_reason(api, workspace, monkeypatch):
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    stub_resolver(monkeypatch, answer=txt("v=spf1 -all", "mailsched-verification=someone-elses-token"))
    response = api.post(f"{URL}/{domain.id}/verify")
    assert response.status_code == 200
    body = response.json()
    assert body["verified"] is False
    assert domain.verification_record in body["last_check_error"]
    assert body["last_checked_at"] is not None


@pytest.mark.parametrize(
    ("error", "reason"), [(NXDOMAIN, "does not exist"), (NO_ANSWER, "no TXT records"), (TIMEOUT, "timed out")]
)
def test_verify_reports_dns_failures_as_unverified(api, workspace, monkeypatch, error, reason):
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    stub_resolver(monkeypatch, error=error)
    response = api.post(f"{URL}/{domain.id}/verify")
    assert response.status_code == 200
    assert response.json()["verified"] is False
    assert reason in response.json()["last_check_error"]
    domain.refresh_from_db()
    assert reason in domain.last_check_error


def test_failed_recheck_keeps_a_verified_domain_verified(api, workspace, monkeypatch):
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    stub_zone(monkeypatch, published_zone(domain))
    api.post(f"{URL}/{domain.id}/verify")
    stub_resolver(monkeypatch, error=TIMEOUT)
    body = api.post(f"{URL}/{domain.id}/verify").json()
    assert body["verified"] is True
    assert "timed out" in body["last_check_error"]


def test_record_split_into_several_strings_is_joined(api, workspace, monkeypatch):
    # DKIM records are longer than one 255-byte string (RFC 7208 §3.3 / RFC 6376 §3.6.2.2): always split.
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    record = domain.verification_record
    split = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, f'"{record[:10]}" "{record[10:]}"')
    zone = published_zone(domain)
    monkeypatch.setattr(
        dns.resolver, "resolve",
        lambda name, rdtype, **kw: [split] if str(name) == "example.com" else txt(*zone[str(name)]),
    )
    assert api.post(f"{URL}/{domain.id}/verify").json()["verified"] is True


def test_created_domain_lists_its_dkim_record_in_dns_records(api):
    body = api.post(URL, {"domain": "example.com"}, format="json").json()
    dkim = [r for r in body["dns_records"] if r["purpose"] == "dkim"]
    assert len(dkim) == 1
    assert dkim[0]["name"].endswith("._domainkey.example.com")
    assert dkim[0]["value"].startswith("v=DKIM1; k=rsa; p=")
    assert (dkim[0]["status"], dkim[0]["key_status"]) == ("pending", "active")
    assert [r["purpose"] for r in body["dns_records"]] == ["verification", "dkim", "spf", "dmarc"]


def test_rotate_dkim_key_adds_a_pending_record(api, workspace):
    domain = SendingDomainFactory(workspace=workspace, domain="example.com")
    response = api.post(f"{URL}/{domain.id}/rotate-dkim-key")
    assert response.status_code == 200
    keys = [r["key_status"] for r in response.json()["dns_records"] if r["purpose"] == "dkim"]
    assert keys == ["active", "pending"]


def test_rotate_dkim_key_of_another_workspace_domain_is_404(api, other_workspace):
    domain = SendingDomainFactory(workspace=other_workspace)
    response = api.post(f"{URL}/{domain.id}/rotate-dkim-key")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "RESOURCE_NOT_FOUND"
    assert domain.dkim_keys.count() == 1

"""The DNS checks of a sending domain and the records it must publish (docs/decisions/081).

Four records, each with its own status and a message a person can act on:

- verification: our TXT token on the domain proves the workspace controls it.
- dkim: `<selector>._domainkey.<domain>` serves our public key (RFC 6376 §3.6.2.1), for the signing key
  and for a key waiting to replace it.
- spf: the domain's one `v=spf1` record (RFC 7208 §4.5: two are an error) names our mail server.
- dmarc: `_dmarc.<domain>`, or of a parent domain (RFC 7489 §6.6.3), has a `v=DMARC1` policy.

The first two decide whether the domain may send; SPF and DMARC only warn (status `warning`): Gmail and
Yahoo require them of bulk senders, but a missing one does not make our signature invalid.
Statuses: `pending` (not checked yet), `verified`, `failed` (blocks sending), `warning`.
"""

from dataclasses import dataclass, field

from django.utils import timezone

from accounts import dkim_keys, dns

PENDING, VERIFIED, FAILED, WARNING = "pending", "verified", "failed", "warning"


def dkim_check_key(selector: str) -> str:
    return f"dkim:{selector}"


@dataclass
class Report:
    checks: dict = field(default_factory=dict)
    can_send: bool = False

    def key_published(self, key) -> bool:
        return self.checks.get(dkim_check_key(key.selector), {}).get("status") == VERIFIED

    def blocking_message(self) -> str:
        return " ".join(c["message"] for c in self.checks.values() if c["status"] == FAILED)


def _result(status: str, message: str) -> dict:
    return {"status": status, "message": message, "checked_at": timezone.now().isoformat().replace("+00:00", "Z")}


def check_domain(*, domain, keys: list) -> Report:
    """Look every record up (no database access: the caller writes the result)."""
    report = Report()
    root_records, root_reason = dns.txt_records(domain.domain)
    report.checks["verification"] = _check_verification(domain, root_records, root_reason)
    for key in keys:
        report.checks[dkim_check_key(key.selector)] = _check_dkim(domain.domain, key)
    report.checks["spf"] = _check_spf(domain.domain, root_records, root_reason)
    report.checks["dmarc"] = _check_dmarc(domain.domain)
    dkim_ok = any(report.key_published(key) for key in keys)
    report.can_send = report.checks["verification"]["status"] == VERIFIED and dkim_ok
    return report


def _check_verification(domain, records: list[str], reason: str) -> dict:
    expected = domain.verification_record
    if any(record.strip() == expected for record in records):
        return _result(VERIFIED, f"Found the verification record on {domain.domain}.")
    if not reason:
        reason = f"No TXT record '{expected}' on {domain.domain} (it has {len(records)} other TXT record(s))."
    return _result(FAILED, reason)


def _check_dkim(domain: str, key) -> dict:
    name = dkim_keys.dkim_record_name(key.selector, domain)
    records, reason = dns.txt_records(name)
    if not records:
        return _result(FAILED, f"{reason} Publish the DKIM record: TXT {name} with the value shown.")
    if any(dkim_keys.published_key_matches(record, key.public_key) for record in records):
        return _result(VERIFIED, f"{name} publishes this domain's DKIM key.")
    return _result(
        FAILED,
        f"{name} has a TXT record, but not this domain's DKIM key (p= differs, or v=/k= are not DKIM1/rsa). "
        "Replace it with the value shown; a DNS console may split the long value into several strings, "
        "which is fine.",
    )


def _check_spf(domain: str, records: list[str], reason: str) -> dict:
    mechanism = dkim_keys.spf_mechanism()
    spf = [r for r in records if r.strip().lower().startswith("v=spf1")]
    if not spf:
        return _result(
            WARNING,
            f"No SPF record on {domain} ({reason or 'no v=spf1 TXT record'}). Publish 'v=spf1 {mechanism} ~all' "
            "(or add the mechanism to your record): Gmail and Yahoo require SPF of bulk senders.",
        )
    if len(spf) > 1:
        return _result(
            WARNING,
            f"{domain} has {len(spf)} SPF records; receivers treat that as an error (RFC 7208 §4.5) and ignore "
            f"all of them. Merge them into one that contains '{mechanism}'.",
        )
    terms = [term.lower().lstrip("+") for term in spf[0].split()[1:]]
    if mechanism.lower() in terms:
        return _result(
            VERIFIED,
            f"The SPF record of {domain} authorizes our mail server ({mechanism}). It aligns with DMARC because "
            "the envelope sender (Return-Path) of our mail is an address at this domain.",
        )
    return _result(
        WARNING,
        f"The SPF record of {domain} does not contain '{mechanism}', so our mail server is not authorized by it "
        "(includes are not followed by this check). Add it before the final 'all'.",
    )


def _dmarc_names(domain: str) -> list[str]:
    # Without the public suffix list the organizational domain is approximated by walking up to the last two
    # labels, which is what receivers find for every name under a two-label registrable domain.
    labels = domain.split(".")
    return [f"_dmarc.{'.'.join(labels[i:])}" for i in range(0, max(1, len(labels) - 1))]


def _check_dmarc(domain: str) -> dict:
    last_reason = ""
    for name in _dmarc_names(domain):
        records, reason = dns.txt_records(name)
        policies = [r for r in records if r.strip().upper().startswith("V=DMARC1")]
        if not policies:
            last_reason = reason or f"{name} has no v=DMARC1 record."
            continue
        tags = dkim_keys.record_tags(policies[0])
        policy = tags.get("p", "none").lower()
        where = "" if name == f"_dmarc.{domain}" else f" (inherited from {name})"
        alignment = (
            "Our DKIM signatures use d=" + domain + ", the From domain, so they align"
            + (" under strict alignment too" if tags.get("adkim", "r").lower() == "s" else " (relaxed alignment)")
            + "."
        )
        advice = " Move to p=quarantine or p=reject once reports look clean." if policy == "none" else ""
        return _result(VERIFIED, f"DMARC policy p={policy}{where}. {alignment}{advice}")
    return _result(
        WARNING,
        f"No DMARC record for {domain}: {last_reason} Publish TXT _dmarc.{domain} 'v=DMARC1; p=none;' at least: "
        "Gmail and Yahoo require a DMARC record of bulk senders.",
    )


def dns_records(domain, keys: list) -> list[dict]:
    """What the domain must publish, each record with the status and message of the last check."""
    checks = domain.dns_checks or {}

    def record(purpose: str, check_key: str, name: str, value: str, extra: dict | None = None) -> dict:
        check = checks.get(check_key) or {"status": PENDING, "message": "Not checked yet: publish it, then verify."}
        return {
            "purpose": purpose,
            "type": "TXT",
            "name": name,
            "value": value,
            "status": check["status"],
            "message": check["message"],
            **(extra or {}),
        }

    out = [record("verification", "verification", domain.domain, domain.verification_record)]
    for key in keys:
        if key.status == "retired":
            continue
        out.append(
            record(
                "dkim",
                dkim_check_key(key.selector),
                dkim_keys.dkim_record_name(key.selector, domain.domain),
                dkim_keys.dkim_record_value(key.public_key),
                {"selector": key.selector, "key_status": key.status},
            )
        )
    out.append(record("spf", "spf", domain.domain, f"v=spf1 {dkim_keys.spf_mechanism()} ~all"))
    out.append(record("dmarc", "dmarc", f"_dmarc.{domain.domain}", "v=DMARC1; p=none;"))
    return out

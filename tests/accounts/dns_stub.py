"""Stand-ins for the DNS resolver (outside the project): tests never touch the network."""

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver


def txt(*values: str) -> list:
    """TXT rdata of each value, split into strings of at most 255 bytes as DNS stores them (RFC 1035 §3.3.14):
    a 2048-bit DKIM record is always split."""
    return [
        dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.TXT,
            " ".join(f'"{value[i:i + 255]}"' for i in range(0, max(len(value), 1), 255)),
        )
        for value in values
    ]


def stub_resolver(monkeypatch, *, answer: list | None = None, error: Exception | None = None) -> list[str]:
    """Make dns.resolver.resolve answer `answer` or raise `error`; returns the names looked up."""
    looked_up: list[str] = []

    def resolve(name, rdtype, *args, **kwargs):
        looked_up.append(str(name))
        assert rdtype == "TXT"
        if error is not None:
            raise error
        return answer

    monkeypatch.setattr(dns.resolver, "resolve", resolve)
    return looked_up


NXDOMAIN = dns.resolver.NXDOMAIN()
NO_ANSWER = dns.resolver.NoAnswer()
TIMEOUT = dns.resolver.LifetimeTimeout(timeout=5.0, errors={})


def stub_zone(monkeypatch, zone: dict[str, list[str] | Exception]) -> list[str]:
    """Make dns.resolver.resolve answer TXT lookups from `zone` (name -> TXT strings, or an exception to
    raise); a name not in it does not exist. Returns the names looked up."""
    looked_up: list[str] = []

    def resolve(name, rdtype, *args, **kwargs):
        name = str(name).rstrip(".")
        looked_up.append(name)
        assert rdtype == "TXT"
        answer = zone.get(name, NXDOMAIN)
        if isinstance(answer, Exception):
            raise answer
        if not answer:
            raise NO_ANSWER
        return txt(*answer)

    monkeypatch.setattr(dns.resolver, "resolve", resolve)
    return looked_up


def published_zone(domain, *, spf: str | None = None, dmarc: str | None = "v=DMARC1; p=none;") -> dict:
    """The zone of an operator who published every record `domain` lists (SPF as listed unless given)."""
    from accounts.selectors import sending_domain_dns_records

    zone: dict[str, list[str]] = {}
    for record in sending_domain_dns_records(domain=domain):
        if record["purpose"] == "spf" and spf is not None:
            continue
        if record["purpose"] == "dmarc":
            continue
        zone.setdefault(record["name"], []).append(record["value"])
    if spf is not None:
        zone.setdefault(domain.domain, []).append(spf)
    if dmarc is not None:
        zone[f"_dmarc.{domain.domain}"] = [dmarc]
    return zone


def dkim_dnsfunc(domain):
    """A resolver for dkimpy's verifier (dkim.verify(dnsfunc=...)) that answers the DKIM records `domain`
    lists in dns_records, as DNS would once they are published."""
    from accounts.selectors import sending_domain_dns_records

    records = {
        r["name"]: r["value"] for r in sending_domain_dns_records(domain=domain) if r["purpose"] == "dkim"
    }

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        value = records.get(name.rstrip("."))
        return value.encode() if value is not None else None

    return dnsfunc

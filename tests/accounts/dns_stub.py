"""Stand-ins for the DNS resolver (outside the project): tests never touch the network."""

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver


def txt(*values: str) -> list:
    return [dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, f'"{value}"') for value in values]


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

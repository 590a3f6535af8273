"""The one place the product asks DNS anything (sending-domain verification, docs/architecture.md#tenancy)."""

import dns.exception
import dns.resolver

# Seconds for the whole lookup, retries included: the check runs inside an API request.
LOOKUP_LIFETIME = 5.0


def txt_records(name: str) -> tuple[list[str], str]:
    """The TXT strings published on `name`, and why there are none when the list is empty.

    A lookup that fails (no such domain, no TXT records, timeout, no reachable nameserver) is an
    answer for the caller to report, not an exception: returns ([], reason). A record split into
    several 255-byte strings (RFC 7208 §3.3) is joined back into one.
    """
    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=LOOKUP_LIFETIME)
    except dns.resolver.NXDOMAIN:
        return [], f"The domain {name} does not exist in DNS (NXDOMAIN)."
    except dns.resolver.NoAnswer:
        return [], f"{name} has no TXT records."
    except dns.exception.Timeout:
        return [], f"The DNS lookup of {name} timed out; try again in a few minutes."
    except dns.resolver.NoNameservers:
        return [], f"No nameserver answered for {name}; try again in a few minutes."
    except dns.exception.DNSException as exc:
        return [], f"The DNS lookup of {name} failed: {exc}"
    records = []
    for rdata in answer:
        records.append(b"".join(rdata.strings).decode("utf-8", errors="replace"))
    return records, ""

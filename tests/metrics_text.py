"""Read a /metrics answer the way Prometheus does (its own text parser), for the metrics tests."""

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, (label, value), ...): value}, labels sorted."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def family_names(text: str) -> list[str]:
    return [family.name for family in text_string_to_metric_families(text)]


def scrape(client, **headers) -> dict[tuple, float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return samples(response.content.decode())

"""The list envelope `{"count", "next", "previous", "results"}` (docs/decisions/002) with the COUNT skipped
when the page read already tells the count (common.pagination)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audience.models import Label

pytestmark = pytest.mark.django_db

URL = "/api/v1/labels"


def _labels(workspace, n: int) -> None:
    Label.objects.bulk_create([Label(workspace=workspace, name=f"label {i:03}") for i in range(n)])


def _counts(queries) -> list[str]:
    # QuerySet.count(): `SELECT COUNT(*) AS "__count" FROM ...`, or `SELECT COUNT(*) FROM (subquery)` over an
    # annotated queryset (the labels' contact counts).
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT COUNT(*)")]


def test_an_empty_first_page_counts_zero_without_a_count_query(api):
    with CaptureQueriesContext(connection) as queries:
        body = api.get(URL).json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}
    assert _counts(queries) == []


def test_a_short_first_page_counts_its_rows_without_a_count_query(api, workspace):
    _labels(workspace, 3)
    with CaptureQueriesContext(connection) as queries:
        body = api.get(URL, {"page_size": 5}).json()
    assert (body["count"], len(body["results"]), body["next"]) == (3, 3, None)
    assert _counts(queries) == []


def test_a_short_last_page_counts_the_rows_before_it_and_on_it(api, workspace):
    _labels(workspace, 7)
    body = api.get(URL, {"page_size": 5, "page": 2}).json()
    assert (body["count"], len(body["results"]), body["next"]) == (7, 2, None)
    assert body["previous"] is not None


def test_a_full_page_counts_with_a_count_query(api, workspace):
    _labels(workspace, 7)
    with CaptureQueriesContext(connection) as queries:
        body = api.get(URL, {"page_size": 5}).json()
    assert (body["count"], len(body["results"])) == (7, 5)
    assert len(_counts(queries)) == 1
    assert body["next"].endswith("page=2&page_size=5")


def test_an_exactly_full_last_page_has_no_next(api, workspace):
    _labels(workspace, 5)
    body = api.get(URL, {"page_size": 5}).json()
    assert (body["count"], len(body["results"]), body["next"]) == (5, 5, None)


def test_a_page_past_the_last_is_a_404(api, workspace):
    _labels(workspace, 3)
    response = api.get(URL, {"page_size": 5, "page": 2})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "RESOURCE_NOT_FOUND"


def test_a_page_that_is_not_a_number_is_a_404(api):
    assert api.get(URL, {"page": "x"}).status_code == 404

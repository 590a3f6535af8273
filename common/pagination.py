from django.conf import settings
from django.core.paginator import Paginator
from rest_framework import pagination


class CountFromShortPagePaginator(Paginator):
    """Django's paginator counts (`SELECT COUNT(*)`) before it reads a page. This one reads the page first:
    when it comes back shorter than a full page, the count is the rows before it plus the rows on it, and no
    COUNT runs (an empty first page, the common "is there anything?" list, costs one query, not two). A full
    page still needs the COUNT, and an empty page past the first goes the usual way to its 404. The
    envelope's `count` is the same number as before (docs/decisions/002); it was never a snapshot with the
    page either, both are separate statements in autocommit."""

    def page(self, number):
        if "count" in self.__dict__ or self.orphans or not self.allow_empty_first_page:
            return super().page(number)
        try:
            wanted = int(number)  # what validate_number accepts; anything else takes its error path below
        except (TypeError, ValueError):
            return super().page(number)
        if wanted < 1:
            return super().page(number)
        offset = (wanted - 1) * self.per_page
        rows = list(self.object_list[offset : offset + self.per_page])
        if len(rows) == self.per_page:
            return self._get_page(rows, self.validate_number(wanted), self)  # COUNT, for num_pages and next
        if rows or wanted == 1:
            self.__dict__["count"] = offset + len(rows)  # the cached_property's slot
            return self._get_page(rows, wanted, self)
        return super().page(number)


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=` and `?page_size=`, capped at API_MAX_PAGE_SIZE (docs/architecture.md#errors)."""

    django_paginator_class = CountFromShortPagePaginator
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # read at request time so tests can override the setting
        return settings.API_MAX_PAGE_SIZE

"""Page-number pagination: ``?page=N`` (from 1) and ``?page_size=M`` (at most 500)."""

from __future__ import annotations

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500

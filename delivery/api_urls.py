"""Delivery's API routes, under /api/v1/ (its tracking routes under /t/ are delivery/urls.py)."""

from django.urls import path

from delivery import apis

urlpatterns = [
    path("events", apis.EventListApi.as_view(), name="event-list"),
    path("engagement/events", apis.EngagementEventsImportApi.as_view(), name="engagement-events-import"),
]

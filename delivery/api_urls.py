"""Delivery's API routes, under /api/v1/ (its tracking routes under /t/ are delivery/urls.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from delivery import apis

router = SimpleRouter(trailing_slash=False)
router.register("throttles", apis.ThrottleViewSet, basename="throttle")

urlpatterns = [
    path("events", apis.EventListApi.as_view(), name="event-list"),
    path("engagement/events", apis.EngagementEventsImportApi.as_view(), name="engagement-events-import"),
    *router.urls,
]

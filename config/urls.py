from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common import views as common_views

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("audience.urls")),
    path("", include("campaigns.urls")),
    path("", include("delivery.api_urls")),
    path("", include("transactional.urls")),
    path("", include("webhooks.urls")),
    path("", include("reports.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

urlpatterns = [
    path("healthz", common_views.healthz, name="healthz"),
    path("readyz", common_views.readyz, name="readyz"),
    path("metrics", common_views.metrics, name="metrics"),
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    path("t/", include("delivery.urls")),
    path("anymail/", include("anymail.urls")),
    # Last: an unknown path under /api/ is the envelope's 404 with DEBUG on too, where Django would answer
    # its HTML debug page instead of calling handler404.
    # csrf_exempt: a PATCH to an unknown API path is a 404 too, not CSRF's 403 (the API authenticates by key).
    re_path(r"^api/", csrf_exempt(common_views.api_not_found)),
]


def handler404(request, exception):
    # Unknown API paths get the JSON envelope; everything else Django's normal page.
    if request.path.startswith("/api/"):
        return common_views.api_not_found(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        from common.exceptions import envelope

        return JsonResponse(envelope("INTERNAL_ERROR", "An unexpected error occurred; it has been logged."), status=500)
    from django.views.defaults import server_error

    return server_error(request)

from django.urls import path

from reports import apis

urlpatterns = [
    path("reports/basic", apis.ReportBasicApi.as_view(), name="report-basic"),
    path("reports/link", apis.ReportLinkApi.as_view(), name="report-link"),
    path("reports/open-time", apis.ReportOpenTimeApi.as_view(), name="report-open-time"),
    path("reports/label", apis.ReportLabelApi.as_view(), name="report-label"),
    path("reports/category", apis.ReportCategoryApi.as_view(), name="report-category"),
    path("reports/export", apis.ReportExportApi.as_view(), name="report-export"),
    path("reports/export/<uuid:export_id>", apis.ReportExportDetailApi.as_view(), name="report-export-detail"),
    path(
        "reports/export/<uuid:export_id>/download",
        apis.ReportExportDownloadApi.as_view(),
        name="report-export-download",
    ),
]

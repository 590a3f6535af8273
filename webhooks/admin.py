"""Webhook endpoints for operators: each with its recent attempts and status codes, and actions that call the
same services as the API (docs/architecture.md#webhooks). Endpoints are created through the API, which shows
the signing secret once."""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from common import errors
from webhooks import services
from webhooks.models import WebhookAttempt, WebhookEndpoint

RECENT = 20


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "workspace", "state", "failure_streak", "last_attempt"]
    list_filter = ["status"]
    search_fields = ["url", "description", "=id"]
    list_select_related = ["workspace"]
    actions = ["send_test", "enable"]
    fields = ["url", "workspace", "description", "event_types", "status", "disabled_reason", "disabled_at",
              "failure_streak", "failing_since", "retry_at", "created_at", "recent_attempts"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # state changes go through the actions (the API's services)

    def changelist_view(self, request, extra_context=None):
        # The webhook.disabled notice: an operator opening the list sees which endpoints stopped, and why.
        for endpoint in WebhookEndpoint.objects.filter(status=WebhookEndpoint.Status.DISABLED)[:5]:
            self.message_user(
                request,
                f"Disabled (webhook.disabled): {endpoint.url} ({endpoint.workspace}): {endpoint.disabled_reason}",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    @admin.display(description="Status", ordering="status")
    def state(self, obj: WebhookEndpoint):
        if obj.status == WebhookEndpoint.Status.DISABLED:
            return format_html('<strong style="color:#ba2121" title="{}">disabled</strong>', obj.disabled_reason)
        if obj.failure_streak:
            since = f"{obj.failing_since:%Y-%m-%d %H:%M}Z" if obj.failing_since else ""
            return format_html('<span style="color:#b36b00">failing</span> since {}', since)
        return "enabled"

    @admin.display(description="Last attempt")
    def last_attempt(self, obj: WebhookEndpoint) -> str:
        attempt = obj.attempts.order_by("-attempted_at").first()
        if attempt is None:
            return "-"
        return f"{attempt.status_code or attempt.error[:40]} @ {attempt.attempted_at:%Y-%m-%d %H:%M:%S}Z"

    @admin.display(description=f"Recent attempts (last {RECENT})")
    def recent_attempts(self, obj: WebhookEndpoint):
        rows = obj.attempts.select_related("message").order_by("-attempted_at")[:RECENT]
        if not rows:
            return "No attempt yet."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td>"
            "<td>{}</td><td>{}</td></tr>",
            (
                (f"{a.attempted_at:%Y-%m-%d %H:%M:%S}Z", a.message.type, a.message.webhook_id, a.trigger,
                 a.status_code or "-", a.duration_ms, a.error or ("ok" if a.succeeded else ""),
                 f"{a.next_retry_at:%Y-%m-%d %H:%M:%S}Z" if a.next_retry_at else "")
                for a in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>When</th><th>Event</th><th>webhook-id</th><th>Trigger</th><th>Status</th>"
            "<th>Duration</th><th>Result</th><th>Next retry</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.action(description="Send a test message to the selected endpoints")
    def send_test(self, request, queryset):
        for endpoint in queryset:
            try:
                services.webhook_endpoint_test(workspace=endpoint.workspace, endpoint_id=endpoint.pk)
            except errors.ApplicationError as exc:
                self.message_user(request, f"{endpoint.url}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{endpoint.url}: test message queued.")

    @admin.action(description="Enable the selected endpoints (clears their failures)")
    def enable(self, request, queryset):
        for endpoint in queryset:
            services.webhook_endpoint_update(workspace=endpoint.workspace, instance=endpoint, enabled=True)
        self.message_user(request, f"{queryset.count()} endpoint(s) enabled.")


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(admin.ModelAdmin):
    """The delivery log of every endpoint; replay sends an attempt's message again, same webhook-id and body."""

    # The status code first: on a narrow screen the table scrolls and what is cut off is the least needed.
    list_display = ["attempted_at", "status_code", "event_type", "trigger", "duration_ms", "error", "next_retry_at",
                    "webhook_id", "endpoint"]
    list_filter = ["succeeded", "trigger"]
    search_fields = ["=message__webhook_id", "=endpoint__id"]
    list_select_related = ["endpoint", "message"]
    actions = ["replay"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the log stays as it happened

    @admin.display(description="Event")
    def event_type(self, obj: WebhookAttempt) -> str:
        return obj.message.type

    @admin.display(description="webhook-id")
    def webhook_id(self, obj: WebhookAttempt) -> str:
        return obj.message.webhook_id

    @admin.action(description="Replay the selected attempts' messages")
    def replay(self, request, queryset):
        done = 0
        for attempt in queryset.select_related("endpoint__workspace"):
            try:
                services.webhook_attempt_replay(
                    workspace=attempt.endpoint.workspace, endpoint_id=attempt.endpoint_id, attempt_id=attempt.pk
                )
                done += 1
            except errors.ApplicationError as exc:
                self.message_user(request, f"{attempt.endpoint.url}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} message(s) queued again.")

from django.contrib import admin, messages
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from common import errors
from transactional import services
from transactional.models import TransactionalMessage


@admin.register(TransactionalMessage)
class TransactionalMessageAdmin(admin.ModelAdmin):
    """The message log for operators: read-only (messages come from the API), cancel as an action."""

    list_display = ["to_email", "subject", "status", "priority", "sandbox", "send_at", "sent_at", "workspace"]
    list_filter = ["status", "priority", "sandbox", "workspace"]
    search_fields = ["to_email", "subject", "customer_reference", "=batch_id", "=id"]
    date_hierarchy = "created_at"
    actions = ["cancel_scheduled"]
    exclude = ["attachments"]

    def get_readonly_fields(self, request, obj=None):
        return [*(field.name for field in self.model._meta.fields if field.name != "attachments"), "log"]

    @admin.display(description="Events")
    def log(self, obj):
        # The one event table has no foreign key to the message (events outlive it), so no inline.
        rows = [(f"{e.occurred_at:%Y-%m-%d %H:%M:%S}Z", e.type, e.data.get("detail", "")) for e in obj.events]
        return format_html_join(mark_safe("<br>"), "{} · {} · {}", rows) or "—"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Cancel the selected scheduled messages")
    def cancel_scheduled(self, request, queryset):
        cancelled, refused = 0, 0
        for message in queryset.select_related("workspace"):
            try:
                services.transactional_message_cancel(workspace=message.workspace, message_id=message.pk)
                cancelled += 1
            except errors.ApplicationError:
                refused += 1
        self.message_user(request, f"Cancelled {cancelled} message(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} message(s) were no longer scheduled.", messages.WARNING)

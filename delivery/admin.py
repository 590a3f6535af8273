"""Read-only views of deliveries and their events for operators: state changes go through the engine's
services only (docs/architecture.md#layers), so the admin shows, filters and searches but never edits."""

from django.contrib import admin

from delivery.models import Delivery, Event


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["email", "status", "campaign", "send_at", "sent_at", "attempts", "error"]
    list_filter = ["status"]
    search_fields = ["email", "message_id"]
    list_select_related = ["campaign"]
    raw_id_fields = ["workspace", "run", "campaign", "contact"]
    date_hierarchy = "send_at"


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """The event stream (docs/architecture.md, "Events"): what happened to every message and campaign."""

    list_display = ["occurred_at", "event_type", "email", "summary", "workspace"]
    list_filter = ["type"]
    search_fields = ["=email", "=message_id", "=campaign_id", "=run_id", "=batch_id"]
    list_select_related = ["workspace"]
    show_full_result_count = False  # a count(*) of millions of events on every page is not worth it

    @admin.display(description="Details")
    def summary(self, obj: Event) -> str:
        data = obj.data if isinstance(obj.data, dict) else {}
        text = data.get("reason") or data.get("url") or data.get("detail") or ""
        if obj.type == Event.Type.CAMPAIGN_FINISHED:
            text = ", ".join(f"{key} {data.get(key, 0)}" for key in ("total", "sent", "failed", "skipped"))
        return text if len(text) <= 90 else text[:89] + "…"

    @admin.display(description="Type", ordering="type")
    def event_type(self, obj: Event) -> str:
        # The code integrators see in the API and in webhooks (campaign.finished), not its label.
        return obj.type

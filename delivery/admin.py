"""Read-only views of deliveries and their events for operators: state changes go through the engine's
services only (DESIGN.md §2), so the admin shows, filters and searches but never edits."""

from django.contrib import admin

from delivery.models import Delivery, DeliveryEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DeliveryEventInline(admin.TabularInline):
    model = DeliveryEvent
    fields = ["kind", "at", "url", "user_agent"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["email", "status", "campaign", "send_at", "sent_at", "attempts", "error"]
    list_filter = ["status"]
    search_fields = ["email", "message_id"]
    list_select_related = ["campaign"]
    raw_id_fields = ["workspace", "run", "campaign", "contact"]
    date_hierarchy = "send_at"
    inlines = [DeliveryEventInline]


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    list_display = ["kind", "delivery", "at", "url"]
    list_filter = ["kind"]
    raw_id_fields = ["workspace", "delivery"]
    list_select_related = ["delivery"]

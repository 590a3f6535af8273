"""Read-only views of deliveries and their events for operators: state changes go through the engine's
services only (docs/architecture.md#layers), so the admin shows, filters and searches but never edits."""

from django import forms
from django.contrib import admin

from common import errors
from delivery import services
from delivery.models import Delivery, Event, Throttle


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


class ThrottleForm(forms.ModelForm):
    """Parses the ramp as "50, 100, 200"; the rules are delivery.services.throttle_clean's, as in the API."""

    warmup_daily_caps = forms.CharField(
        required=False, help_text="Messages allowed on day 1, 2, 3, ... of the ramp, comma-separated: 50, 100, 200."
    )

    class Meta:
        model = Throttle
        fields = ["workspace", "scope", "domain", "rate_per_second", "warmup_started_on", "warmup_daily_caps"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        caps = self.instance.warmup_daily_caps
        if caps:
            self.initial["warmup_daily_caps"] = ", ".join(map(str, caps))

    def clean_warmup_daily_caps(self):
        text = (self.cleaned_data.get("warmup_daily_caps") or "").strip()
        if not text:
            return None
        try:
            return [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise forms.ValidationError("Whole numbers separated by commas, e.g. 50, 100, 200.") from None

    def service_fields(self) -> dict:
        data = self.cleaned_data
        started_on, caps = data.get("warmup_started_on"), data.get("warmup_daily_caps")
        warmup = None
        if started_on or caps:
            warmup = {"started_on": started_on.isoformat() if started_on else None, "daily_caps": caps}
        return {
            "scope": data.get("scope"),
            "domain": data.get("domain") or "",
            "rate_per_second": data.get("rate_per_second"),
            "warmup": warmup,
        }

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            try:
                services.throttle_clean(**self.service_fields())
            except errors.ValidationError as exc:
                for key, messages in exc.details.items():
                    field = {"warmup.started_on": "warmup_started_on", "warmup.daily_caps": "warmup_daily_caps"}.get(
                        key, key
                    )
                    for message in messages:
                        self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(Throttle)
class ThrottleAdmin(admin.ModelAdmin):
    """Editable throttles: saved through the same rule as the API (delivery.services.throttle_clean)."""

    form = ThrottleForm
    list_display = ["workspace", "scope", "domain", "rate_per_second", "warmup_started_on", "updated_at"]
    list_filter = ["scope", "workspace"]
    search_fields = ["domain"]

    def save_model(self, request, obj, form, change):
        fields = form.service_fields()
        if change:
            saved = services.throttle_update(workspace=obj.workspace, instance=obj, **fields)
        else:
            saved = services.throttle_create(workspace=form.cleaned_data["workspace"], **fields)
        obj.pk = saved.pk

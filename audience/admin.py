"""Operators' view of the audience. Admin users see every workspace; the forms enforce what the API's
services enforce (lower-cased emails, labels of the contact's own workspace, valid segment rules)."""

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from audience.models import Contact, ContactImport, Label, Segment, Suppression, normalize_email
from audience.selectors import contact_engagement
from audience.services import CONTACT_HEADER_FIELDS, segment_rules_check
from common import errors
from common.validators import validate_single_line


class ContactAdminForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = [
            "workspace",
            "email",
            "first_name",
            "last_name",
            "timezone",
            "status",
            "attributes",
            "labels",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Email and names go into the To header: the API's single-line rule, not a second copy of it.
        for name in CONTACT_HEADER_FIELDS:
            self.fields[name].validators.append(validate_single_line)

    def clean_email(self):
        return normalize_email(self.cleaned_data["email"])

    def clean(self):
        cleaned = super().clean()
        workspace, labels = cleaned.get("workspace"), cleaned.get("labels")
        if workspace and labels:
            foreign = [label.name for label in labels if label.workspace_id != workspace.id]
            if foreign:
                self.add_error("labels", f"These labels belong to another workspace: {', '.join(foreign)}.")
        return cleaned


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactAdminForm
    list_display = ["email", "first_name", "last_name", "status", "timezone", "workspace", "created_at"]
    list_filter = ["status", "labels", "workspace"]
    search_fields = ["email", "first_name", "last_name"]
    list_select_related = ["workspace"]
    filter_horizontal = ["labels"]
    readonly_fields = ["id", "created_at", "updated_at", "engagement_profile"]
    date_hierarchy = "created_at"

    @admin.display(description="Engagement (Send Time Optimization)")
    def engagement_profile(self, obj: Contact):
        """The profile as a week of hours (UTC): darker is a better hour. What the scorer reads."""
        if obj is None or obj._state.adding:  # the add page: a UUID is set before the row exists
            return "-"
        data = contact_engagement(workspace=obj.workspace, contact_id=obj.pk, now=timezone.now())
        summary = format_html(
            "<p>{} opens, {} clicks, {} machine opens (left out); last engaged {}. Best hours (UTC): {}.</p>",
            data["opens"],
            data["clicks"],
            data["machine_opens"],
            data["last_engaged_at"] or "never",
            ", ".join(_hour_name(h["hour_of_week"]) for h in data["best_hours"]) or "none yet",
        )
        top = max(data["profile"]) or 1.0
        head = format_html_join("", '<th style="padding:0 2px;font-weight:normal">{}</th>', ((h,) for h in range(24)))
        rows = format_html_join(
            "",
            "<tr><th style='padding-right:6px'>{}</th>{}</tr>",
            (
                (day, _cells(data["profile"][d * 24 : d * 24 + 24], top))
                for d, day in enumerate(DAYS)
            ),
        )
        table = format_html(
            '<table style="border-collapse:collapse;font-size:11px" aria-label="Engagement by hour of week, UTC">'
            "<tr><th>UTC</th>{}</tr>{}</table>",
            head,
            rows,
        )
        return format_html("{}{}", summary, table)


DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _hour_name(hour_of_week: int) -> str:
    return f"{DAYS[hour_of_week // 24]} {hour_of_week % 24:02d}:00"


def _cells(values: list[float], top: float):
    return format_html_join(
        "",
        '<td title="{}" style="width:18px;height:14px;border:1px solid #ddd;background:rgba(32,96,160,{})"></td>',
        ((f"{v:.3f}", f"{v / top:.2f}") for v in values),
    )


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "created_at"]
    list_filter = ["workspace"]
    search_fields = ["name"]
    list_select_related = ["workspace"]
    readonly_fields = ["id", "created_at"]


class SegmentAdminForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["workspace", "name", "rules"]

    def clean(self):
        cleaned = super().clean()
        workspace = cleaned.get("workspace")
        if workspace is not None and "rules" in cleaned:
            try:
                segment_rules_check(workspace=workspace, rules=cleaned["rules"])
            except errors.ValidationError as exc:
                self.add_error("rules", exc.message)
        return cleaned


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentAdminForm
    list_display = ["name", "workspace", "updated_at"]
    list_filter = ["workspace"]
    search_fields = ["name"]
    list_select_related = ["workspace"]
    readonly_fields = ["id", "created_at", "updated_at"]


class SuppressionAdminForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ["workspace", "email", "reason"]

    def clean_email(self):
        return normalize_email(self.cleaned_data["email"])


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    form = SuppressionAdminForm
    list_display = ["email", "reason", "workspace", "created_at"]
    list_filter = ["reason", "workspace"]
    search_fields = ["email"]
    list_select_related = ["workspace"]
    readonly_fields = ["id", "created_at"]


@admin.register(ContactImport)
class ContactImportAdmin(admin.ModelAdmin):
    """Read-only: imports are started by the API or `manage.py import_contacts`."""

    list_display = [
        "filename",
        "workspace",
        "status",
        "total_rows",
        "processed_rows",
        "created_count",
        "updated_count",
        "error_count",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "workspace"]
    search_fields = ["filename"]
    list_select_related = ["workspace"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

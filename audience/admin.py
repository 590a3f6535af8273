"""Operators' view of the audience. Admin users see every workspace; the forms enforce what the API's
services enforce (lower-cased emails, labels of the contact's own workspace, valid segment rules)."""

from django import forms
from django.contrib import admin

from audience.models import Contact, ContactImport, Label, Segment, Suppression, normalize_email
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
    readonly_fields = ["id", "created_at", "updated_at"]
    date_hierarchy = "created_at"


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

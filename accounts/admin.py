"""Operators' side of accounts (docs/architecture.md#tenancy). Saves and actions call the same services as the API;
the forms check the same rules first so that a mistake is a form error, not a server error."""

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html, format_html_join

from accounts import selectors, services
from accounts.models import ApiKey, SendingDomain, Workspace, normalize_domain
from common import errors


def add_application_error(form: forms.Form, exc: errors.ApplicationError) -> None:
    """Show a service's ValidationError on the form fields it names."""
    for field, messages_ in (exc.details or {"non_field_errors": [exc.message]}).items():
        target = field if field in form.fields else None
        for message in messages_:
            form.add_error(target, message)


def adopt(target: models.Model, created: models.Model) -> None:
    """Make the admin's unsaved form instance the row a service created, so that the admin's log entry
    and redirect point at it."""
    for field in created._meta.concrete_fields:
        setattr(target, field.attname, getattr(created, field.attname))
    target._state.adding = False
    target._state.db = created._state.db


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "timezone", "created_at"]
    search_fields = ["name"]
    fields = ["name", "timezone"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.workspace_update(workspace=obj, name=data["name"], timezone=data["timezone"])
        else:
            adopt(obj, services.workspace_create(name=data["name"], timezone=data["timezone"]))


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["workspace", "name", "sandbox", "expires_at"]

    def clean(self):
        data = super().clean()
        try:
            services.api_key_check_expiry(expires_at=data.get("expires_at"))
        except errors.ValidationError as exc:
            add_application_error(self, exc)
        return data


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here or with `manage.py create_api_key`. The raw key is shown once, in the
    message after creation; only its hash is stored, so it can never be shown again, and no page here
    shows the hash (key_hash is in no field list, list column or search field)."""

    form = ApiKeyAddForm
    list_display = ["prefix", "name", "workspace", "sandbox", "revoked", "expires_at", "last_used_at", "created_at"]
    list_filter = ["sandbox", "revoked", "workspace"]
    search_fields = ["prefix", "name", "workspace__name"]
    list_select_related = ["workspace"]
    fields = ["workspace", "name", "sandbox", "expires_at"]
    readonly_fields = ["prefix", "revoked", "created_at", "last_used_at"]
    actions = ["revoke_selected"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.fields
        return ["prefix", "workspace", "name", "sandbox", "revoked", "expires_at", "created_at", "last_used_at"]

    def has_change_permission(self, request, obj=None):
        # A key is immutable once issued (revoke it with the action); the change page is read-only.
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        api_key, raw = services.api_key_create(
            workspace=data["workspace"],
            name=data.get("name", ""),
            sandbox=data.get("sandbox", False),
            expires_at=data.get("expires_at"),
        )
        adopt(obj, api_key)
        messages.success(
            request,
            f"API key created for {api_key.workspace}: {raw} - copy it now, it will not be shown again.",
        )

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request, queryset):
        keys = list(queryset.select_related("workspace"))
        for key in keys:
            services.api_key_revoke(workspace=key.workspace, api_key_id=key.pk)
        messages.success(request, f"Revoked {len(keys)} key(s).")


class SendingDomainAddForm(forms.ModelForm):
    class Meta:
        model = SendingDomain
        fields = ["workspace", "domain"]

    def clean_domain(self):
        try:
            return normalize_domain(self.cleaned_data["domain"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(SendingDomain)
class SendingDomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "workspace", "verified", "verified_by", "verified_at", "last_checked_at"]
    list_filter = ["verified", "verified_by", "workspace"]
    search_fields = ["domain", "workspace__name"]
    list_select_related = ["workspace"]
    actions = ["mark_verified", "run_dns_check", "rotate_dkim_key"]
    readonly_fields = [
        "domain", "workspace", "verification_record", "dns_records_table", "verified", "verified_by", "verified_at",
        "last_checked_at", "last_check_error", "created_at",
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = SendingDomainAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ["workspace", "domain"]

    def has_change_permission(self, request, obj=None):
        # The domain is immutable and its state changes through the actions only.
        return False

    def save_model(self, request, obj, form, change):
        domain = services.sending_domain_create(
            workspace=form.cleaned_data["workspace"], domain=form.cleaned_data["domain"]
        )
        adopt(obj, domain)
        messages.info(
            request,
            f"Publish a TXT record on {domain.domain} with the value {domain.verification_record} and the DKIM, SPF "
            "and DMARC records listed on its page, then run the DNS check.",
        )

    @admin.display(description="DNS records")
    def dns_records_table(self, obj):
        # Two rows a record: what and where with the check's result, then the value on its own full-width row
        # (a DKIM value is ~400 characters; squeezed into a column it would wrap into a long ribbon).
        rows = format_html_join(
            "",
            "<tr><td><strong>{}</strong></td><td>{} <code>{}</code></td><td><strong>{}</strong> {}</td></tr>"
            "<tr><td></td><td colspan='2'><code style='word-break:break-all;white-space:normal'>{}</code></td></tr>",
            (
                (r["purpose"] + (f" ({r['key_status']})" if "key_status" in r else ""), r["type"], r["name"],
                 r["status"], r["message"], r["value"])
                for r in selectors.sending_domain_dns_records(domain=obj)
            ),
        )
        return format_html(
            "<table style='max-width:60em'><thead><tr><th>purpose</th><th>record and value</th><th>status</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    def delete_model(self, request, obj):
        services.sending_domain_delete(workspace=obj.workspace, instance=obj)

    def delete_queryset(self, request, queryset):
        for domain in queryset.select_related("workspace"):
            services.sending_domain_delete(workspace=domain.workspace, instance=domain)

    @admin.action(description="Mark verified (admin override)")
    def mark_verified(self, request, queryset):
        domains = list(queryset.select_related("workspace"))
        for domain in domains:
            services.sending_domain_mark_verified(workspace=domain.workspace, domain_id=domain.pk)
        messages.success(request, f"Marked {len(domains)} domain(s) verified.")

    @admin.action(description="Run DNS check")
    def run_dns_check(self, request, queryset):
        for domain in queryset.select_related("workspace"):
            checked = services.sending_domain_verify(workspace=domain.workspace, domain_id=domain.pk)
            if checked.verified and not checked.last_check_error:
                messages.success(request, f"{checked.domain}: verified.")
            else:
                messages.warning(request, f"{checked.domain}: {checked.last_check_error}")

    @admin.action(description="Rotate DKIM key (publish the new record, then run the DNS check)")
    def rotate_dkim_key(self, request, queryset):
        domains = list(queryset.select_related("workspace"))
        for domain in domains:
            services.sending_domain_rotate_key(workspace=domain.workspace, domain_id=domain.pk)
        messages.success(
            request, f"Started a DKIM key rotation on {len(domains)} domain(s): publish the pending record."
        )

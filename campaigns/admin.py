from django import forms
from django.contrib import admin

from accounts.admin import add_application_error, adopt
from campaigns import selectors, services
from campaigns.models import Template
from common import errors


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ["workspace", "name", "subject", "html", "text"]

    def clean(self):
        data = super().clean()
        try:
            services.template_check(
                name=data.get("name") or "", subject=data.get("subject") or "",
                html=data.get("html") or "", text=data.get("text") or "",
            )
        except errors.ValidationError as exc:
            add_application_error(self, exc)
        # On the change page workspace is read-only, and Django then skips the (workspace, name)
        # constraint: without this check a duplicate name would fail in save_model, past the form.
        name = data.get("name")
        if not self.instance._state.adding and name and selectors.template_name_taken(
            workspace=self.instance.workspace, name=name, exclude_id=self.instance.pk
        ):
            self.add_error("name", f"A template named '{name.strip()}' already exists in this workspace.")
        return data


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    form = TemplateForm
    list_display = ["name", "workspace", "subject", "updated_at"]
    list_filter = ["workspace"]
    search_fields = ["name", "subject", "workspace__name"]
    list_select_related = ["workspace"]

    def get_readonly_fields(self, request, obj=None):
        # A template stays in its workspace: campaigns of that workspace point at it.
        return ["workspace"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        content = {field: data[field] for field in ("name", "subject", "html", "text")}
        if change:
            services.template_update(workspace=obj.workspace, instance=obj, **content)
        else:
            adopt(obj, services.template_create(workspace=data["workspace"], **content))

    def delete_model(self, request, obj):
        services.template_delete(workspace=obj.workspace, instance=obj)

    def delete_queryset(self, request, queryset):
        for template in queryset.select_related("workspace"):
            services.template_delete(workspace=template.workspace, instance=template)

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from accounts.admin import add_application_error, adopt
from campaigns import selectors, services
from campaigns.forms import WEEKDAYS, CampaignForm, ScheduleForm, error_text
from campaigns.models import AUDIENCE_KEYS, Campaign, CampaignRun, Template
from common import charts, errors
from common.timezones import is_valid_timezone


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ["workspace", "name", "subject", "html", "text"]

    def clean(self):
        data = super().clean()
        try:
            services.template_check(
                name=data.get("name") or "",
                subject=data.get("subject") or "",
                html=data.get("html") or "",
                text=data.get("text") or "",
            )
        except errors.ValidationError as exc:
            add_application_error(self, exc)
        # On the change page workspace is read-only, and Django then skips the (workspace, name)
        # constraint: without this check a duplicate name would fail in save_model, past the form.
        name = data.get("name")
        if (
            not self.instance._state.adding
            and name
            and selectors.template_name_taken(workspace=self.instance.workspace, name=name, exclude_id=self.instance.pk)
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


# --- Campaigns ---------------------------------------------------------------------------------------------
#
# Operators' side of campaigns (docs/architecture.md). Every save and every action calls one service of
# campaigns.services with the campaign's own workspace (admin users see all workspaces); a service's refusal
# is shown with its API error code, never as a server error.

STATUS_COLOURS = {
    Campaign.Status.DRAFT: "#6c757d",
    Campaign.Status.SCHEDULED: "#0d6efd",
    Campaign.Status.SENDING: "#fd7e14",
    Campaign.Status.PAUSED: "#b8860b",
    Campaign.Status.SENT: "#198754",
    Campaign.Status.REPORTED: "#146c43",
    Campaign.Status.CANCELLED: "#495057",
    Campaign.Status.FAILED: "#dc3545",
}
WEEKDAY_NAMES = dict(WEEKDAYS)


def schedule_summary(campaign: Campaign) -> str:
    """One line a person can read: "once at 2026-07-01 09:00Z", "weekly Mon,Wed 09:00 America/New_York"."""
    config = campaign.recurring_config or {}
    if campaign.schedule_type == Campaign.ScheduleType.RECURRING and config:
        frequency, interval = config.get("frequency", ""), config.get("interval") or 1
        unit = {"daily": "days", "weekly": "weeks", "monthly": "months"}.get(frequency, "")
        parts = [frequency if interval == 1 else f"every {interval} {unit}"]
        if frequency == "weekly":
            parts.append(",".join(WEEKDAY_NAMES.get(day, str(day)) for day in config.get("days_of_week") or []))
        if frequency == "monthly":
            parts.append(f"on day {config.get('day_of_month')}")
        parts.append(f"{config.get('time')} {config.get('time_zone')}")
        if config.get("end_date"):
            parts.append(f"until {config['end_date']}")
    elif campaign.schedule_type == Campaign.ScheduleType.SCHEDULED and campaign.scheduled_at:
        parts = [f"once at {campaign.scheduled_at.astimezone(UTC):%Y-%m-%d %H:%M}Z"]
        zone = campaign.schedule_timezone
        if zone and zone != "UTC" and is_valid_timezone(zone):
            parts.append(f"({campaign.scheduled_at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone})")
    else:
        return ""
    if campaign.recipient_local_time:
        parts.append("in each recipient's local time")
    if campaign.send_time_optimization:
        parts.append(f"with STO over {campaign.send_time_optimization.get('window_hours')}h")
    return " ".join(parts)


def _display_zone(campaign: Campaign) -> str:
    """The zone an operator reads this campaign's times in: its schedule's, else its workspace's."""
    for zone in (campaign.schedule_timezone, campaign.workspace.timezone):
        if zone and is_valid_timezone(zone):
            return zone
    return "UTC"


def _utc(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}Z" if value else "-"


class CampaignRunInline(admin.TabularInline):
    """The campaign's sends, newest first; written only by the delivery engine."""

    model = CampaignRun
    extra = 0
    can_delete = False
    show_change_link = False
    fields = [
        "status",
        "trigger",
        "due_at",
        "launched_at",
        "finished_at",
        "total",
        "sent",
        "failed",
        "skipped",
        "cancelled",
        "sandbox",
        "failure_reason",
    ]
    readonly_fields = fields
    ordering = ["-due_at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ScheduleTypeFilter(admin.SimpleListFilter):
    """Filter on the schedule type, with "none" for campaigns that have no schedule."""

    title = "schedule type"
    parameter_name = "schedule_type"

    def lookups(self, request, model_admin):
        return [*Campaign.ScheduleType.choices, ("none", "No schedule")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(schedule_type="")
        if self.value() in Campaign.ScheduleType.values:
            return queryset.filter(schedule_type=self.value())
        return queryset


# Object actions: URL name -> (service, button label, success message). Each calls exactly one service.
OBJECT_ACTIONS = {
    "send-now": (services.campaign_send_now, "Send now", "Sending started."),
    "cancel-schedule": (services.campaign_cancel_schedule, "Cancel schedule", "Schedule cancelled; back to draft."),
    "pause": (services.campaign_pause, "Pause", "Paused."),
    "resume": (services.campaign_resume, "Resume", "Resumed."),
    "stop": (services.campaign_stop, "Stop", "Stopped; the remaining recipients will not be sent."),
    "duplicate": (services.campaign_duplicate, "Duplicate", "Duplicated."),
}
# The change page's buttons, in this order. A button is offered when Campaign.TRANSITIONS allows its action
# in the campaign's status; the service still decides under its row lock, and a refusal (say the campaign
# started sending meanwhile) is shown as an error message.
BUTTONS = ("send-now", "schedule", "cancel-schedule", "pause", "resume", "stop", "duplicate")


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    change_form_template = "admin/campaigns/campaign/change_form.html"
    list_display = ["name", "workspace", "status_badge", "schedule", "next_run_at", "progress", "updated_at"]
    list_filter = ["status", "workspace", "category", ScheduleTypeFilter]
    search_fields = ["name", "subject"]
    list_select_related = ["workspace"]
    inlines = [CampaignRunInline]
    actions = ["send_now", "schedule_selected", "cancel_schedule", "duplicate", "pause", "resume", "stop"]
    readonly_fields = [
        "status_badge",
        "schedule",
        "next_run_at",
        "upcoming_runs",
        "readiness",
        "progress_detail",
        "send_plan",
        "audience_summary",
        "created_at",
        "updated_at",
    ]

    CONTENT = (
        "Content",
        {"fields": ["subject", "preheader", "from_name", "from_email", "reply_to", "template", "html", "text"]},
    )
    AUDIENCE = ("Audience and tracking", {"fields": [*AUDIENCE_KEYS, "tracking"]})

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["workspace", "name", "category", "labels"]}), self.CONTENT, self.AUDIENCE]
        # Readiness answers "can this be sent?": only a campaign that can still be started asks it (a
        # cancelled or sent campaign is not "ready to send", whatever its fields say).
        status = ["readiness"] if obj.status in Campaign.STARTABLE else []
        # Once the campaign is read-only, its audience is shown by name only, not as the JSON of its ids.
        audience = ["audience_summary", *AUDIENCE_KEYS] if obj.can_transition("edit") else ["audience_summary"]
        return [
            (None, {"fields": ["name", "workspace", "status_badge", "category", "labels"]}),
            ("Readiness and progress", {"fields": [*status, "progress_detail", "send_plan"]}),
            ("Schedule", {"fields": ["schedule", "next_run_at", "upcoming_runs"]}),
            self.CONTENT,
            ("Audience and tracking", {"fields": [*audience, "tracking"]}),
            ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        # A campaign stays in its workspace: its audience ids, template and labels belong to it.
        return [*self.readonly_fields, "workspace"] if obj is not None else self.readonly_fields

    def get_queryset(self, request):
        # The list shows the latest run's counters (as selectors.campaign_progress does for one campaign)
        # in the same query, instead of one query per row.
        latest = CampaignRun.objects.filter(campaign=OuterRef("pk")).order_by("-due_at")
        return (
            super()
            .get_queryset(request)
            .annotate(
                latest_run_total=Subquery(latest.values("total")[:1]),
                latest_run_sent=Subquery(latest.values("sent")[:1]),
            )
        )

    def get_inline_instances(self, request, obj=None):
        # The runs are display-only, and the form writes through the service as its last validation step:
        # no formset may be posted (and fail) after that.
        if obj is None or request.method == "POST":
            return []
        return super().get_inline_instances(request, obj)

    def has_change_permission(self, request, obj=None):
        # A campaign whose status does not allow "edit" is read-only (the service would refuse the edit
        # anyway); its actions (pause, resume, stop, duplicate) stay on the page.
        if obj is not None and not obj.can_transition("edit"):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not obj.can_transition("delete"):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        # Deleting goes through campaign_delete one draft at a time, from the change page.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # --- Saving -------------------------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        """Nothing to do: CampaignForm stored the campaign through campaign_create / campaign_update while
        validating, and `obj` is that campaign (CampaignForm.save)."""

    def save_related(self, request, form, formsets, change):
        """Labels were set by the service, and the runs inline is read-only."""

    def delete_model(self, request, obj):
        services.campaign_delete(workspace=obj.workspace, campaign_id=obj.pk)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except errors.ApplicationError as exc:
            # e.g. it was scheduled by someone else after this page was opened.
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[object_id]))

    # --- Columns and panels -------------------------------------------------------------------------------

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="campaign-status" data-status="{}" style="background:{};color:#fff;padding:2px 8px;'
            'border-radius:10px;font-size:0.75rem;white-space:nowrap">{}</span>',
            obj.status,
            STATUS_COLOURS.get(obj.status, "#6c757d"),
            obj.get_status_display(),
        )

    @admin.display(description="schedule")
    def schedule(self, obj):
        return schedule_summary(obj) or "-"

    @admin.display(description="progress")
    def progress(self, obj):
        total = getattr(obj, "latest_run_total", None)
        if total is None:
            return "-"
        return f"{obj.latest_run_sent}/{total}"

    @admin.display(description="progress")
    def progress_detail(self, obj):
        progress = selectors.campaign_progress(campaign=obj)
        if not progress["total"] and obj.status in (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED):
            return "Not sent yet."
        return format_html(
            '{}<div class="help">{} sent, {} failed, {} cancelled, {} pending (latest run)</div>',
            charts.progress_bar(progress=progress, label=f"{obj.name}: progress of the latest run"),
            progress["sent"],
            progress["failed"],
            progress["cancelled"],
            progress["pending"],
        )

    @admin.display(description="audience")
    def audience_summary(self, obj):
        summary = selectors.campaign_audience_summary(workspace=obj.workspace, campaign=obj)
        rows = [
            (title, ", ".join(summary[key]))
            for key, title in (
                ("include_labels", "Labels"),
                ("include_segments", "Segments"),
                ("exclude_labels", "Except labels"),
                ("exclude_segments", "Except segments"),
            )
            if summary[key]
        ]
        if not rows:
            rows = [("Selects", "no one yet (add an include label or segment)")]
        unknown = (
            format_html("<li>{} id(s) no longer in this workspace, ignored</li>", summary["unknown"])
            if summary["unknown"]
            else ""
        )
        return format_html(
            '<div class="audience-summary" data-count-url="{}"><ul class="audience-rules">{}{}</ul>'
            '<p aria-live="polite"><strong class="recipient-count" data-count="{}">{} sendable recipient{}</strong>'
            " now</p></div>",
            reverse("admin:campaigns_campaign_recipient_count", args=[obj.pk]),
            format_html_join("", "<li>{}: {}</li>", rows),
            unknown,
            summary["count"],
            summary["count"],
            "" if summary["count"] == 1 else "s",
        )

    @admin.display(description="readiness")
    def readiness(self, obj):
        result = selectors.campaign_readiness(workspace=obj.workspace, campaign=obj)
        if result["can_send"]:
            return format_html(
                '<strong class="readiness" data-can-send="true" style="color:#198754">{}</strong>', "Ready to send"
            )
        items = format_html_join(
            "",
            "<li><code>{}</code>: needs {}</li>",
            ((item, selectors.READINESS_HINTS.get(item, item)) for item in result["missing"]),
        )
        return format_html(
            '<strong class="readiness" data-can-send="false" style="color:#dc3545">Not ready to send</strong>'
            '<ul class="readiness-missing">{}</ul>',
            items,
        )

    @admin.display(description="upcoming runs")
    def upcoming_runs(self, obj):
        runs = selectors.campaign_upcoming_runs(campaign=obj)
        if not runs:
            return "None (not scheduled)"
        zone = obj.schedule_timezone if is_valid_timezone(obj.schedule_timezone) else ""
        rows = (
            (_utc(run), f" ({run.astimezone(ZoneInfo(zone)):%a %Y-%m-%d %H:%M} {zone})" if zone else "") for run in runs
        )
        return format_html('<ul class="upcoming-runs">{}</ul>', format_html_join("", "<li>{}{}</li>", rows))

    @admin.display(description="send plan")
    def send_plan(self, obj):
        if obj.status not in (
            Campaign.Status.DRAFT,
            Campaign.Status.SCHEDULED,
            Campaign.Status.FAILED,
            Campaign.Status.SENDING,
            Campaign.Status.PAUSED,
        ):
            return "-"
        plan = selectors.campaign_send_plan(workspace=obj.workspace, campaign=obj)
        zone = _display_zone(obj)
        hours = len(plan["per_hour"])
        return format_html(
            '<div class="send-plan" data-total="{}"><p>{} recipient{} over {} hour{} ({}, hours in {})</p>{}</div>',
            plan["total"],
            plan["total"],
            "" if plan["total"] == 1 else "s",
            hours,
            "" if hours == 1 else "s",
            "as written at launch" if plan["source"] == "deliveries" else "planned if it launched as scheduled",
            zone,
            charts.hour_histogram(per_hour=plan["per_hour"], zone=zone),
        )

    # --- Object actions (buttons on the change page) ------------------------------------------------------

    def get_urls(self):
        urls = [
            path(
                "<path:object_id>/recipient-count/",
                self.admin_site.admin_view(self.recipient_count_view),
                name="campaigns_campaign_recipient_count",
            ),
            path(
                "<path:object_id>/schedule/preview/",
                self.admin_site.admin_view(self.schedule_preview_view),
                name="campaigns_campaign_schedule_preview",
            ),
            path(
                "<path:object_id>/schedule/",
                self.admin_site.admin_view(self.schedule_view),
                name="campaigns_campaign_schedule",
            ),
        ]
        for name in OBJECT_ACTIONS:
            urls.append(
                path(
                    f"<path:object_id>/{name}/",
                    self.admin_site.admin_view(self.object_action_view),
                    {"action": name},
                    name=f"campaigns_campaign_{name.replace('-', '_')}",
                )
            )
        return urls + super().get_urls()

    def _action_allowed(self, request, action: str) -> bool:
        if action == "duplicate":
            return self.has_add_permission(request)
        return super().has_change_permission(request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra_context = extra_context or {}
        if obj is not None:
            buttons = []
            for name in BUTTONS:
                if not obj.can_transition(name) or not self._action_allowed(request, name):
                    continue
                url_name = f"admin:campaigns_campaign_{name.replace('-', '_')}"
                label = "Schedule…" if name == "schedule" else OBJECT_ACTIONS[name][1]
                buttons.append(
                    {
                        "name": name,
                        "label": label,
                        "url": reverse(url_name, args=[obj.pk]),
                        "method": "get" if name == "schedule" else "post",
                    }
                )
            extra_context["campaign_buttons"] = buttons
            extra_context["preview"] = self._preview(request, obj)
        return super().change_view(request, object_id, form_url, extra_context)

    def _preview(self, request, obj) -> dict:
        """The message as one contact (?preview_contact=<id>) or the sample data will get it, rendered by the
        same selector as `GET campaigns/{id}/preview`. A template error is shown in words, not raised."""
        contact_id = request.GET.get("preview_contact") or None
        contacts = selectors.campaign_preview_contacts(workspace=obj.workspace, campaign=obj)
        result = {"contacts": contacts, "contact_id": contact_id or "", "error": ""}
        try:
            result["message"] = selectors.campaign_preview(workspace=obj.workspace, campaign=obj, contact_id=contact_id)
        except errors.ApplicationError as exc:
            result["error"] = error_text(exc)
        return result

    def _get_or_redirect(self, request, object_id):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return None, self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return obj, None

    def object_action_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self._action_allowed(request, action):
            raise PermissionDenied
        campaign, redirect = self._get_or_redirect(request, object_id)
        if redirect:
            return redirect
        service, _, success = OBJECT_ACTIONS[action]
        try:
            result = service(workspace=campaign.workspace, campaign_id=campaign.pk)
        except errors.ApplicationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        if action == "duplicate":
            self.log_addition(request, result, [{"added": {}}])
            self.message_user(request, f"Duplicated as “{result.name}”.", messages.SUCCESS)
        else:
            self.log_change(request, result, f"{OBJECT_ACTIONS[action][1]} (status {result.status})")
            self.message_user(request, success, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[result.pk]))

    def schedule_view(self, request, object_id):
        if not self._action_allowed(request, "schedule"):
            raise PermissionDenied
        campaign, redirect = self._get_or_redirect(request, object_id)
        if redirect:
            return redirect
        if request.method == "POST":
            form = ScheduleForm(request.POST)
            if form.is_valid():
                try:
                    scheduled = services.campaign_schedule(
                        workspace=campaign.workspace, campaign_id=campaign.pk, request=form.schedule_request
                    )
                except errors.ApplicationError as exc:
                    self.message_user(request, error_text(exc), messages.ERROR)
                else:
                    self.log_change(request, scheduled, f"Scheduled: {schedule_summary(scheduled)}")
                    self.message_user(request, f"Scheduled: {schedule_summary(scheduled)}.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        else:
            form = ScheduleForm(initial=ScheduleForm.initial_for(campaign))
        return self._schedule_page(request, form, [campaign])

    def recipient_count_view(self, request, object_id):
        """The audience panel's live count: the four choices as a query string in, {"count"} out."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        campaign, redirect = self._get_or_redirect(request, object_id)
        if redirect:
            return redirect
        audience = {key: request.GET.getlist(key) for key in AUDIENCE_KEYS}
        return JsonResponse(
            {"count": selectors.audience_recipient_count(workspace=campaign.workspace, audience=audience)}
        )

    def schedule_preview_view(self, request, object_id=None):
        """The schedule form's live echo: the form's fields as a query string in, the next runs or the
        service's errors in words out (JSON). Reads only; the form's own POST is what schedules."""
        if not self._action_allowed(request, "schedule"):
            raise PermissionDenied
        return JsonResponse(ScheduleForm(request.GET).preview())

    def _schedule_page(self, request, form, campaigns, *, from_changelist: bool = False):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Schedule campaign" if len(campaigns) == 1 else f"Schedule {len(campaigns)} campaigns",
            "form": form,
            "campaigns": campaigns,
            "from_changelist": from_changelist,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "preview_url": reverse("admin:campaigns_campaign_schedule_preview", args=[campaigns[0].pk]),
            # After a refused POST the echo shows at once; otherwise the page's script asks for it.
            "preview": form.preview() if form.is_bound else None,
        }
        return TemplateResponse(request, "admin/campaigns/campaign/schedule.html", context)

    # --- Changelist actions ---------------------------------------------------------------------------------

    def _each(self, request, queryset, service, done: str):
        """Call `service` for each selected campaign; report successes and each refusal with its code."""
        succeeded = []
        for campaign in queryset.select_related("workspace"):
            try:
                result = service(workspace=campaign.workspace, campaign_id=campaign.pk)
            except errors.ApplicationError as exc:
                self.message_user(request, f"{campaign.name}: {error_text(exc)}", messages.ERROR)
            else:
                succeeded.append(result)
        if succeeded:
            names = ", ".join(f"“{c.name}”" for c in succeeded)
            self.message_user(request, f"{done}: {names}.", messages.SUCCESS)
        return succeeded

    @admin.action(description="Send now", permissions=["change"])
    def send_now(self, request, queryset):
        self._each(request, queryset, services.campaign_send_now, "Sending started")

    @admin.action(description="Schedule…", permissions=["change"])
    def schedule_selected(self, request, queryset):
        campaigns = list(queryset.select_related("workspace"))
        if "apply" in request.POST:
            form = ScheduleForm(request.POST)
            if form.is_valid():
                # One parsed schedule for all: each campaign is then scheduled by the service on its own.
                self._each(
                    request,
                    queryset,
                    lambda *, workspace, campaign_id: services.campaign_schedule(
                        workspace=workspace, campaign_id=campaign_id, request=form.schedule_request
                    ),
                    "Scheduled",
                )
                return None
        else:
            form = ScheduleForm(initial=ScheduleForm.initial_for(campaigns[0]) if len(campaigns) == 1 else None)
        return self._schedule_page(request, form, campaigns, from_changelist=True)

    @admin.action(description="Cancel schedule", permissions=["change"])
    def cancel_schedule(self, request, queryset):
        self._each(request, queryset, services.campaign_cancel_schedule, "Schedule cancelled")

    @admin.action(description="Duplicate", permissions=["add"])
    def duplicate(self, request, queryset):
        self._each(request, queryset, services.campaign_duplicate, "Duplicated")

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request, queryset):
        self._each(request, queryset, services.campaign_pause, "Paused")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request, queryset):
        self._each(request, queryset, services.campaign_resume, "Resumed")

    @admin.action(description="Stop", permissions=["change"])
    def stop(self, request, queryset):
        self._each(request, queryset, services.campaign_stop, "Stopped")

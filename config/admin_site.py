"""The project's admin site: the operators' home page as its index, and django-celery-beat's models kept
for superusers under a "System" section (docs/decisions/090-operators-admin.md).

It lives in `config`, above the apps' layers, because the home page gathers what several apps know: the
campaigns' runs and timeline, the broker's queue depths, the workers' heartbeat."""

from datetime import UTC
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.utils import timezone

from accounts.models import Workspace
from campaigns import selectors as campaign_selectors
from campaigns.forms import timezone_choices
from common import charts
from common.tasks import heartbeat_age_seconds
from common.timezones import is_valid_timezone
from delivery.engine import queue_depths

SYSTEM_APPS = ("django_celery_beat",)
# A heartbeat older than this means beat or the default worker is down (beat sends one every few seconds).
HEARTBEAT_STALE_SECONDS = 60


class SuperusersOnly:
    """Mixed into the ModelAdmin of a system model: the ticks are registered by the project itself
    (common.periodic), and an operator who edits or deletes one stops the delivery engine."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, *args):
        return request.user.is_active and request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser and super().has_delete_permission(request, obj)


class MailschedAdminSite(admin.AdminSite):
    site_header = "mailsched"
    site_title = "mailsched admin"
    index_title = "Today"
    index_template = "admin/mailsched/index.html"

    def restrict_system_models(self) -> None:
        """Swap each system model's ModelAdmin for one that only superusers reach (called once the apps'
        admin modules are loaded)."""
        for model, model_admin in list(self._registry.items()):
            if model._meta.app_label in SYSTEM_APPS and not isinstance(model_admin, SuperusersOnly):
                restricted = type(f"System{type(model_admin).__name__}", (SuperusersOnly, type(model_admin)), {})
                self.unregister(model)
                self.register(model, restricted)

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        for app in apps:
            if app["app_label"] in SYSTEM_APPS:
                app["name"] = "System"
        # The system section goes last: it is the part operators should least need.
        return sorted(apps, key=lambda app: app["app_label"] in SYSTEM_APPS)

    def index(self, request, extra_context=None):
        # The home page is about campaigns: a staff user who may not see them gets the plain app list.
        home = operator_home(request) if request.user.has_perm("campaigns.view_campaign") else {}
        return super().index(request, {"show_home": bool(home), **home, **(extra_context or {})})


def operator_home(request) -> dict:
    """The home page's context: for the chosen workspace (or every workspace: admin users see them all),
    what is sending, what goes out in the next days in the operator's chosen zone, what went wrong, and
    whether the engine is alive."""
    now = timezone.now()
    workspaces = list(Workspace.objects.order_by("name"))
    chosen = request.GET.get("workspace", "")
    shown = [w for w in workspaces if str(w.pk) == chosen] or workspaces
    zone = request.GET.get("tz") or (shown[0].timezone if len(shown) == 1 else "") or "UTC"
    if not is_valid_timezone(zone):
        zone = "UTC"
    tz = ZoneInfo(zone)
    sending, timeline, problems = [], [], {"failed_runs": [], "missed_runs": [], "paused": []}
    for workspace in shown:
        sending += campaign_selectors.campaigns_in_progress(workspace=workspace, now=now)
        timeline += campaign_selectors.campaign_timeline(workspace=workspace, now=now)
        for key, items in campaign_selectors.campaign_recent_problems(workspace=workspace, now=now).items():
            problems[key] += items
    for item in sending:
        item["bar"] = charts.progress_bar(progress=item["progress"], label=f"{item['campaign'].name}: progress")
    days: dict = {}
    for entry in sorted(timeline, key=lambda e: e["at"]):
        local = entry["at"].astimezone(tz)
        entry["local_at"] = local
        entry["local_until"] = entry["until"].astimezone(tz) if entry["until"] else None
        days.setdefault(local.date(), []).append(entry)
    try:
        heartbeat = heartbeat_age_seconds()
    except Exception:  # noqa: BLE001 - Redis away: the page says so
        heartbeat = "unreachable"
    return {
        "workspaces": workspaces,
        "chosen_workspace": chosen if len(shown) == 1 and len(workspaces) > 1 else "",
        "zone": zone,
        "zones": campaign_zone_choices(),
        "now_local": now.astimezone(tz),
        "now_utc": now.astimezone(UTC),
        "sending": sending,
        "timeline_days": sorted(days.items()),
        "timeline_count": len(timeline),
        "problems": problems,
        "queues": queue_depths(),
        "heartbeat": heartbeat,
        "heartbeat_stale": not isinstance(heartbeat, float | int) or heartbeat > HEARTBEAT_STALE_SECONDS,
    }


def campaign_zone_choices() -> list[str]:
    return [zone for zone, _ in timezone_choices()]

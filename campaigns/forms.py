"""Admin forms for campaigns. They parse what an operator typed and hand it to the same services the API
calls; every refusal of a service comes back as an error on the form, never as a server error."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, available_timezones

from django import forms

from audience.models import Label, Segment
from campaigns import scheduling, services
from campaigns.models import AUDIENCE_KEYS, Campaign, default_tracking
from common import errors

WEEKDAYS = [(1, "Mon"), (2, "Tue"), (3, "Wed"), (4, "Thu"), (5, "Fri"), (6, "Sat"), (7, "Sun")]


def error_text(exc: errors.ApplicationError) -> str:
    """One line for an admin message: the API's error code first, so operators and integrators talk about
    the same thing (e.g. "CAMPAIGN_NOT_CANCELLABLE: Only a scheduled campaign ...")."""
    text = f"{exc.code}: {exc.message}"
    if isinstance(exc, errors.ValidationError) and exc.details:
        text += " (" + "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in exc.details.items()) + ")"
    return text


def add_service_error(form: forms.Form, exc: errors.ApplicationError, field_map: dict | None = None) -> None:
    """Put a service's error on the form: a ValidationError on the fields it names (`audience.include_labels`
    lands on `audience`), anything else (409, 422) as a form-wide error with its code."""
    if not isinstance(exc, errors.ValidationError) or not exc.details:
        form.add_error(None, error_text(exc))
        return
    field_map = field_map or {}
    for key, messages in exc.details.items():
        field = field_map.get(key, key.split(".")[0])
        target = field if field in form.fields else None
        for message in messages:
            # Keep the service's key in the text when it is more precise than the field it lands on.
            form.add_error(target, message if key == target else f"{key}: {message}")


def timezone_choices() -> list[tuple[str, str]]:
    zones = sorted(available_timezones() - {"UTC"})
    return [("UTC", "UTC"), *[(zone, zone) for zone in zones]]


def grouped_timezone_choices() -> list:
    """The IANA zones grouped by their area ("Asia", "America", ...) for a picker an operator can scan;
    zones without an area ("Japan", "EST5EDT": legacy aliases) go last under "Other"."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for zone, _ in timezone_choices()[1:]:
        area, _, place = zone.partition("/")
        groups.setdefault(area if place else "Other", []).append((zone, zone))
    other = groups.pop("Other", [])
    return [("UTC", "UTC"), *sorted(groups.items()), ("Other", other)]


def describe_instant(instant: datetime, zone: str) -> str:
    """ "Tue 1 Dec 2026 09:00 Asia/Jakarta = 02:00 UTC" (the UTC date too when it differs)."""
    local, utc = instant.astimezone(ZoneInfo(zone)), instant.astimezone(UTC)
    text = f"{local:%a} {local.day} {local:%b %Y %H:%M} {zone}"
    if zone == "UTC":
        return text
    same_day = local.date() == utc.date()
    return f"{text} = {utc:%H:%M} UTC" if same_day else f"{text} = {utc:%a} {utc.day} {utc:%b %H:%M} UTC"


class CampaignForm(forms.ModelForm):
    """Add and change form. The service is the only writer and the only judge of the rules (template syntax,
    ids of this workspace, a scheduled campaign must stay ready, status must be editable), so it is called as
    the last step of validation: a refusal becomes an error on the page the operator typed into, and the
    admin's request transaction still wraps the write. `save()` returns the campaign the service stored."""

    # The audience by name: four multiple choices instead of the JSON of ids the API takes. On the add page
    # the workspace is not chosen yet, so every workspace's labels are offered with its name, and the service
    # refuses another workspace's (an error on the field, as in the API).
    include_labels = forms.ModelMultipleChoiceField(
        queryset=Label.objects.select_related("workspace"), required=False, help_text="Anyone with any of these labels."
    )
    include_segments = forms.ModelMultipleChoiceField(
        queryset=Segment.objects.select_related("workspace"), required=False, help_text="Or in any of these segments."
    )
    exclude_labels = forms.ModelMultipleChoiceField(
        queryset=Label.objects.select_related("workspace"), required=False, help_text="Except anyone with these labels."
    )
    exclude_segments = forms.ModelMultipleChoiceField(
        queryset=Segment.objects.select_related("workspace"), required=False, help_text="Or in these segments."
    )
    tracking = forms.JSONField(required=False, help_text='{"opens": true, "clicks": true}; empty resets both to on.')

    class Meta:
        model = Campaign
        fields = [
            "workspace",
            "name",
            "category",
            "labels",
            "subject",
            "preheader",
            "from_name",
            "from_email",
            "reply_to",
            "template",
            "html",
            "text",
            "tracking",
        ]

    # Fields the services take, in the shape they take them (see `_service_value`); and `audience`, built
    # from the four choices of AUDIENCE_KEYS.
    SERVICE_FIELDS = tuple(name for name in Meta.fields if name != "workspace")
    # The service's error keys of the audience, and the field each lands on.
    AUDIENCE_FIELD_MAP = {f"audience.{key}": key for key in AUDIENCE_KEYS}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:  # (pk is no test: the UUID default sets it on add too)
            # On the change page the workspace is fixed: offer only its templates and labels.
            workspace = self.instance.workspace
            if "template" in self.fields:
                self.fields["template"].queryset = self.fields["template"].queryset.filter(workspace=workspace)
            for name in ("labels", *AUDIENCE_KEYS):
                if name in self.fields:
                    self.fields[name].queryset = self.fields[name].queryset.filter(workspace=workspace)
            audience = self.instance.audience if isinstance(self.instance.audience, dict) else {}
            for key in AUDIENCE_KEYS:
                if key in self.fields:
                    self.fields[key].initial = [str(value) for value in audience.get(key) or []]
        else:
            for key in AUDIENCE_KEYS:
                if key in self.fields:
                    self.fields[key].label_from_instance = lambda item: f"{item.workspace.name}: {item.name}"
        self.campaign: Campaign | None = None

    def _audience_fields(self) -> list[str]:
        return [key for key in AUDIENCE_KEYS if key in self.fields]

    # The tracking JSON is handed to the service as typed: its shape and defaults are the service's rules
    # (campaign_tracking_clean), the same the API's requests meet. An empty box resets it to its defaults.

    def clean_tracking(self):
        value = self.cleaned_data.get("tracking")
        return default_tracking() if value in (None, "", {}) else value

    def _service_value(self, name: str):
        value = self.cleaned_data.get(name)
        if name == "template":
            return value.pk if value is not None else None
        if name == "labels":
            return [label.pk for label in value]
        if name == "audience":
            return {key: [str(item.pk) for item in self.cleaned_data.get(key) or []] for key in AUDIENCE_KEYS}
        if name == "tracking":
            return value
        if name == "name":
            return value.strip()
        return value if value is not None else ""

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        try:
            editable = [name for name in self.SERVICE_FIELDS if name in self.fields]
            if self._audience_fields():
                editable.append("audience")
            if self.instance._state.adding:
                fields = {name: self._service_value(name) for name in editable}
                self.campaign = services.campaign_create(workspace=self.cleaned_data["workspace"], fields=fields)
            else:
                changed = [name for name in editable if name in self.changed_data]
                if set(self._audience_fields()) & set(self.changed_data):
                    changed.append("audience")
                if not changed:
                    self.campaign = self.instance
                    return
                self.campaign = services.campaign_update(
                    workspace=self.instance.workspace,
                    campaign_id=self.instance.pk,
                    fields={name: self._service_value(name) for name in changed},
                )
        except errors.ApplicationError as exc:
            add_service_error(self, exc, field_map=self.AUDIENCE_FIELD_MAP)

    def save(self, commit=True):
        if self.errors or self.campaign is None:
            raise ValueError("The campaign could not be saved because the form did not validate.")
        return self.campaign

    def save_m2m(self):
        """Labels were set by the service."""


class ScheduleForm(forms.Form):
    """Schedule or reschedule: once at a wall-clock date and time in an IANA zone, or recurring. The time
    rules (past instants, DST gaps, recurring config shape) and the ranges of interval, day of month and
    STO window are the service's `schedule_parse`: the fields only parse numbers, so an operator gets the
    API's answer, on the field it is about."""

    schedule_type = forms.ChoiceField(
        choices=[("scheduled", "Once, at a date and time"), ("recurring", "Recurring")],
        initial="scheduled",
        widget=forms.RadioSelect,
    )
    date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="For once.")
    time = forms.TimeField(
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="Wall-clock time in the time zone below.",
    )
    timezone = forms.ChoiceField(choices=grouped_timezone_choices, initial="UTC", label="Time zone")
    frequency = forms.ChoiceField(
        required=False,
        choices=[("", "---------"), ("daily", "Daily"), ("weekly", "Weekly"), ("monthly", "Monthly")],
        help_text="For recurring.",
    )
    interval = forms.IntegerField(required=False, initial=1, help_text="Every N days, weeks or months.")
    days_of_week = forms.TypedMultipleChoiceField(
        required=False,
        choices=WEEKDAYS,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        help_text="For weekly.",
    )
    day_of_month = forms.IntegerField(required=False, help_text="For monthly; a shorter month sends on its last day.")
    end_date = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Last day (inclusive); optional.",
    )
    sto_window_hours = forms.IntegerField(
        required=False,
        label="Send Time Optimization window (hours)",
        help_text="Optional: send each recipient at their best hour within this window.",
    )
    sto_holdout_percent = forms.IntegerField(
        required=False,
        label="STO holdout (%)",
        help_text="Optional: this share of recipients gets the window start, to measure the uplift.",
    )
    recipient_local_time = forms.BooleanField(
        required=False,
        label="Recipient's local time",
        help_text="Deliver at this wall-clock time in each recipient's zone.",
    )
    max_lateness_minutes = forms.IntegerField(
        required=False,
        label="Maximum lateness (minutes)",
        help_text="Optional: a run (or a recipient) that cannot start within this is missed, not sent late.",
    )
    quiet_hours_start = forms.TimeField(
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        label="Quiet hours from",
        help_text="Optional: nothing is sent between these times in each recipient's zone.",
    )
    quiet_hours_end = forms.TimeField(
        required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"), label="Quiet hours until"
    )
    only_new_recipients = forms.BooleanField(
        required=False,
        label="Only new recipients",
        help_text="Recurring: each run reaches only contacts no earlier run reached.",
    )

    WHEN_FIELDS = ("schedule_type", "date", "time", "timezone")
    RECURRING_FIELDS = ("frequency", "interval", "days_of_week", "day_of_month", "end_date")
    OPTION_FIELDS = ("sto_window_hours", "sto_holdout_percent", "recipient_local_time")
    POLICY_FIELDS = ("max_lateness_minutes", "quiet_hours_start", "quiet_hours_end", "only_new_recipients")

    # The service's error keys, and the field of this form that each lands on.
    FIELD_MAP = {
        "scheduled_at": "date",
        "timezone": "timezone",
        "recurring_config": None,
        "recurring_config.frequency": "frequency",
        "recurring_config.interval": "interval",
        "recurring_config.days_of_week": "days_of_week",
        "recurring_config.day_of_month": "day_of_month",
        "recurring_config.time": "time",
        "recurring_config.time_zone": "timezone",
        "recurring_config.end_date": "end_date",
        "send_time_optimization.window_hours": "sto_window_hours",
        "quiet_hours": "quiet_hours_start",
        "quiet_hours.start": "quiet_hours_start",
        "quiet_hours.end": "quiet_hours_end",
        "send_time_optimization.holdout_percent": "sto_holdout_percent",
    }

    @classmethod
    def initial_for(cls, campaign: Campaign) -> dict:
        """Pre-fill with the campaign's current schedule, so that rescheduling starts from it."""
        config = campaign.recurring_config or {}
        initial = {"timezone": campaign.schedule_timezone or campaign.workspace.timezone or "UTC"}
        if campaign.schedule_type == Campaign.ScheduleType.RECURRING and config:
            initial.update(
                schedule_type="recurring",
                frequency=config.get("frequency"),
                interval=config.get("interval") or 1,
                days_of_week=config.get("days_of_week") or [],
                day_of_month=config.get("day_of_month"),
                time=config.get("time"),
                end_date=config.get("end_date"),
            )
        elif campaign.scheduled_at:
            local = campaign.scheduled_at.astimezone(ZoneInfo(initial["timezone"]))
            initial.update(schedule_type="scheduled", date=local.date(), time=local.strftime("%H:%M"))
        if campaign.send_time_optimization:
            initial["sto_window_hours"] = campaign.send_time_optimization.get("window_hours")
            initial["sto_holdout_percent"] = campaign.send_time_optimization.get("holdout_percent") or 0
        initial["recipient_local_time"] = campaign.recipient_local_time
        initial["max_lateness_minutes"] = campaign.max_lateness_minutes
        if campaign.quiet_hours:
            initial["quiet_hours_start"] = campaign.quiet_hours["start"]
            initial["quiet_hours_end"] = campaign.quiet_hours["end"]
        initial["only_new_recipients"] = campaign.only_new_recipients
        return initial

    def preview(self, *, now: datetime | None = None) -> dict:
        """What the schedule will do, before it is saved: {"ok", "runs": [text of the next five runs (one for
        a one-off schedule)], "errors": {field: [messages]}}. The runs come from the same rules the service
        stores the schedule with (`schedule_parse`, campaigns.scheduling), so what is shown is what runs."""
        if not self.is_valid():
            return {"ok": False, "runs": [], "errors": {f: [str(m) for m in msgs] for f, msgs in self.errors.items()}}
        request = self.schedule_request
        zone = request.timezone_name or "UTC"
        if request.recurring is not None:
            runs = scheduling.upcoming_runs(config=request.recurring, now=now, anchor=request.anchor)
        else:
            runs = [request.scheduled_at]
        return {"ok": True, "runs": [describe_instant(run, zone) for run in runs], "errors": {}}

    def groups(self) -> list[tuple[str, list]]:
        return [
            ("When", [self[name] for name in self.WHEN_FIELDS]),
            ("Recurring", [self[name] for name in self.RECURRING_FIELDS]),
            ("Options", [self[name] for name in self.OPTION_FIELDS]),
            ("Policies", [self[name] for name in self.POLICY_FIELDS]),
        ]

    def clean(self):
        data = super().clean()
        self.schedule_request = None
        if self.errors:
            return data
        kwargs = {"recipient_local_time": data.get("recipient_local_time", False)}
        if data.get("sto_window_hours") is not None:
            kwargs["send_time_optimization"] = {
                "window_hours": data["sto_window_hours"],
                "holdout_percent": data.get("sto_holdout_percent") or 0,
            }
        kwargs["max_lateness_minutes"] = data.get("max_lateness_minutes")
        kwargs["only_new_recipients"] = bool(data.get("only_new_recipients"))
        start, end = data.get("quiet_hours_start"), data.get("quiet_hours_end")
        if start or end:
            # Half a window goes to the service as given: it names the missing end.
            kwargs["quiet_hours"] = {
                key: value.strftime("%H:%M") for key, value in (("start", start), ("end", end)) if value
            }
        wall_time = data.get("time")
        if data["schedule_type"] == "scheduled":
            if data.get("date") is None or wall_time is None:
                self.add_error("date" if data.get("date") is None else "time", "Give a date and a time.")
                return data
            # A naive wall-clock time plus the zone: the service resolves it (and refuses DST gaps).
            kwargs.update(
                schedule_type="scheduled",
                scheduled_at=datetime.combine(data["date"], wall_time).isoformat(),
                timezone_name=data["timezone"],
            )
        else:
            config = {
                "frequency": data.get("frequency") or None,
                "interval": data["interval"] if data.get("interval") is not None else 1,
                "time": wall_time.strftime("%H:%M") if wall_time else None,
                "time_zone": data["timezone"],
            }
            # Only what the operator filled in: the service says when a field does not fit the frequency.
            if data.get("days_of_week"):
                config["days_of_week"] = data["days_of_week"]
            if data.get("day_of_month") is not None:
                config["day_of_month"] = data["day_of_month"]
            if data.get("end_date"):
                config["end_date"] = data["end_date"].isoformat()
            kwargs.update(schedule_type="recurring", recurring_config=config)
        try:
            self.schedule_request = services.schedule_parse(**kwargs)
        except errors.ApplicationError as exc:
            add_service_error(self, exc, field_map=self.FIELD_MAP)
        return data

"""HTTP shapes of the audience API. Input serializers parse and check formats; services own the rules
(uniqueness, labels of the workspace, segment grammar)."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audience.models import Contact, ContactImport, Label, Segment, Suppression, validate_attributes
from common.serializers import ObjectField, StrictInputSerializer, reject_nul
from common.timezones import validate_timezone_name

# --- contacts -------------------------------------------------------------------------------------------


class ContactInput(StrictInputSerializer):
    email = serializers.EmailField(max_length=254, validators=[reject_nul])
    first_name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, validators=[reject_nul]
    )
    last_name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, validators=[reject_nul]
    )
    timezone = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        validators=[validate_timezone_name],
        help_text="IANA zone, e.g. 'Asia/Jakarta'; blank means the workspace's default.",
    )
    attributes = ObjectField(
        required=False, validators=[validate_attributes], help_text="A JSON object of custom fields."
    )
    labels = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=500,
        help_text="Label ids of this workspace.",
    )
    status = serializers.ChoiceField(choices=Contact.Status.choices, required=False)


class ContactOutput(serializers.ModelSerializer):
    labels = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    attributes = serializers.DictField()

    class Meta:
        model = Contact
        fields = [
            "id",
            "email",
            "first_name",
            "last_name",
            "timezone",
            "attributes",
            "labels",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# --- labels ---------------------------------------------------------------------------------------------


class LabelInput(StrictInputSerializer):
    name = serializers.CharField(max_length=100, validators=[reject_nul])


class LabelOutput(serializers.ModelSerializer):
    contact_count = serializers.SerializerMethodField(help_text="Contacts with this label.")

    class Meta:
        model = Label
        fields = ["id", "name", "contact_count", "created_at"]
        read_only_fields = fields

    def get_contact_count(self, obj: Label) -> int:
        count = getattr(obj, "contact_count", None)
        return count if count is not None else obj.contacts.count()


# --- segments -------------------------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "object",
        "description": (
            'Rules: {"all": [...]} or {"any": [...]}, nestable; conditions '
            '{"attribute": name, "op": eq|neq|in|not_in|contains|exists|not_exists|gt|gte|lt|lte, '
            '"value": v}, '
            '{"label": label_id, "op": has|has_not}, '
            '{"field": status|email|first_name|last_name|timezone, "op": eq|neq|in|not_in|contains, '
            '"value": v}.'
        ),
        "example": {"all": [{"attribute": "country", "op": "eq", "value": "ID"}]},
    }
)
class RulesField(serializers.JSONField):
    pass


class SegmentInput(StrictInputSerializer):
    name = serializers.CharField(max_length=200, validators=[reject_nul])
    rules = RulesField(validators=[reject_nul])


class SegmentOutput(serializers.ModelSerializer):
    rules = RulesField()

    class Meta:
        model = Segment
        fields = ["id", "name", "rules", "created_at", "updated_at"]
        read_only_fields = fields


class CountOutput(serializers.Serializer):
    count = serializers.IntegerField()


# --- suppressions ---------------------------------------------------------------------------------------


class SuppressionInput(StrictInputSerializer):
    email = serializers.EmailField(max_length=254, validators=[reject_nul])
    reason = serializers.ChoiceField(choices=Suppression.Reason.choices, required=False)


class SuppressionOutput(serializers.ModelSerializer):
    class Meta:
        model = Suppression
        fields = ["id", "email", "reason", "created_at"]
        read_only_fields = fields


# --- imports --------------------------------------------------------------------------------------------


class ContactImportInput(StrictInputSerializer):
    file = serializers.FileField(
        allow_empty_file=True,
        help_text=(
            "CSV, UTF-8, with a header row. Columns: email (required), first_name, last_name, timezone, "
            "status, labels (names separated by ';' or '|', created if missing); any other column is "
            "stored in attributes."
        ),
    )


class ImportRowErrorOutput(serializers.Serializer):
    line = serializers.IntegerField(help_text="Line of the CSV file; the header is line 1.")
    email = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


@extend_schema_field({"type": "string", "description": " | ".join(ContactImport.Status.values)})
class ImportStatusField(serializers.CharField):
    """Not an enum component: drf-spectacular names enums by field name, and a second "status" choice set
    collides with the contacts' one (a project-wide ENUM_NAME_OVERRIDES entry would allow the enum)."""


class ContactImportOutput(serializers.ModelSerializer):
    status = ImportStatusField()
    errors = ImportRowErrorOutput(many=True, help_text="Skipped rows (the first 1000).")

    class Meta:
        model = ContactImport
        fields = [
            "id",
            "filename",
            "status",
            "total_rows",
            "processed_rows",
            "created_count",
            "updated_count",
            "error_count",
            "errors",
            "failure_reason",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


# --- engagement (docs/decisions/030) ---------------------------------------------------------------------


class BestHourOutput(serializers.Serializer):
    hour_of_week = serializers.IntegerField(help_text="0 = Monday 00:00-00:59 UTC ... 167 = Sunday 23:00 UTC.")
    score = serializers.FloatField()


class ContactEngagementOutput(serializers.Serializer):
    opens = serializers.IntegerField(help_text="Opens counted (machine opens left out).")
    clicks = serializers.IntegerField()
    machine_opens = serializers.IntegerField(help_text="Prefetches and scanner fetches, not counted as opens.")
    last_engaged_at = serializers.DateTimeField(allow_null=True)
    best_hours = BestHourOutput(many=True, help_text="The three best hours of week, best first.")
    profile = serializers.ListField(
        child=serializers.FloatField(),
        min_length=168,
        max_length=168,
        help_text="168 hour-of-week scores (UTC, Monday 00:00 first): decayed, clicks weighted, per send.",
    )

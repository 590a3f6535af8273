from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.jsontree import strings


class StrictInputSerializer(serializers.Serializer):
    """Input serializers list their fields; a field they do not know is an error, not silently
    dropped, so an integrator's typo ("scheduled_time") is caught instead of ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            read_only = sorted(name for name in data if name in self.fields and self.fields[name].read_only)
            errors = {name: ["Unknown field."] for name in unknown}
            errors.update({name: ["This field is read-only."] for name in read_only})
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


@extend_schema_field({"type": "object", "additionalProperties": True})
class ObjectField(serializers.JSONField):
    """A JSON object (never null, never another JSON type), documented as one: a bare JSONField is documented
    as any value, null included, which the validators behind it refuse."""


@extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
class NullableObjectField(serializers.JSONField):
    """A JSON object, or null; the service behind it checks the object's shape."""


def reject_nul(value):
    """PostgreSQL text and jsonb cannot hold U+0000; refuse it at the edge instead of failing on save.
    Walks nested values without recursion (common.jsontree)."""
    if any("\x00" in text for _, text in strings(value)):
        raise serializers.ValidationError("Text may not contain NUL characters.")
    return value

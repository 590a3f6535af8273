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


def reject_nul(value):
    """PostgreSQL text and jsonb cannot hold U+0000; refuse it at the edge instead of failing on save.
    Walks nested values without recursion (common.jsontree)."""
    if any("\x00" in text for _, text in strings(value)):
        raise serializers.ValidationError("Text may not contain NUL characters.")
    return value

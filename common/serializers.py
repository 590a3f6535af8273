from rest_framework import serializers


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
    """PostgreSQL text and jsonb cannot hold U+0000; refuse it at the edge instead of failing on save."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError("Text may not contain NUL characters.")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key)
            reject_nul(item)
    elif isinstance(value, list):
        for item in value:
            reject_nul(item)
    return value

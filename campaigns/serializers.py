from rest_framework import serializers

from campaigns.models import Template
from common.serializers import StrictInputSerializer, reject_nul


class TemplateInput(StrictInputSerializer):
    name = serializers.CharField(max_length=200, validators=[reject_nul])
    subject = serializers.CharField(max_length=998, allow_blank=True, default="", validators=[reject_nul])
    html = serializers.CharField(allow_blank=True, default="", trim_whitespace=False, validators=[reject_nul])
    text = serializers.CharField(allow_blank=True, default="", trim_whitespace=False, validators=[reject_nul])


class TemplateOutput(serializers.ModelSerializer):
    class Meta:
        model = Template
        fields = ["id", "name", "subject", "html", "text", "created_at", "updated_at"]
        read_only_fields = fields

from rest_framework import serializers

from accounts.models import SendingDomain
from common.serializers import StrictInputSerializer, reject_nul


class SendingDomainInput(StrictInputSerializer):
    # Length and shape are checked by the service (accounts.models.normalize_domain), the one rule
    # the API, the admin and the management command share.
    domain = serializers.CharField(max_length=300, validators=[reject_nul])


class SendingDomainOutput(serializers.ModelSerializer):
    # Blank until the domain is verified; declared so the schema's enum says so (a read-only model field
    # with choices is documented with its choices only).
    verified_by = serializers.ChoiceField(
        choices=SendingDomain._meta.get_field("verified_by").choices, allow_blank=True, read_only=True
    )
    verification_record = serializers.CharField(
        read_only=True, help_text="Publish this value as a TXT record on the domain, then call verify."
    )

    class Meta:
        model = SendingDomain
        fields = [
            "id", "domain", "verified", "verified_by", "verification_record", "verified_at",
            "last_checked_at", "last_check_error", "created_at",
        ]
        read_only_fields = fields

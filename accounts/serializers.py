from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import SendingDomain
from accounts.selectors import sending_domain_dns_records
from common.serializers import StrictInputSerializer, reject_nul


class SendingDomainInput(StrictInputSerializer):
    # Length and shape are checked by the service (accounts.models.normalize_domain), the one rule
    # the API, the admin and the management command share.
    domain = serializers.CharField(max_length=300, validators=[reject_nul])


class DnsRecordOutput(serializers.Serializer):
    purpose = serializers.ChoiceField(choices=["verification", "dkim", "spf", "dmarc"])
    type = serializers.CharField()
    name = serializers.CharField(help_text="The DNS name to publish the record at.")
    value = serializers.CharField()
    status = serializers.ChoiceField(
        choices=["pending", "verified", "failed", "warning"],
        help_text="The last verify's result: pending (not checked), verified, failed (blocks sending), warning.",
    )
    message = serializers.CharField(help_text="What the last check found, and what to do about it.")
    selector = serializers.CharField(required=False, help_text="DKIM records only.")
    key_status = serializers.ChoiceField(
        choices=["active", "pending"], required=False,
        help_text="DKIM records only: active signs; pending replaces it once verify finds it published.",
    )


class SendingDomainOutput(serializers.ModelSerializer):
    # Blank until the domain is verified; declared so the schema's enum says so (a read-only model field
    # with choices is documented with its choices only).
    verified_by = serializers.ChoiceField(
        choices=SendingDomain._meta.get_field("verified_by").choices, allow_blank=True, read_only=True
    )
    verification_record = serializers.CharField(
        read_only=True, help_text="Publish this value as a TXT record on the domain, then call verify."
    )
    dns_records = serializers.SerializerMethodField()

    class Meta:
        model = SendingDomain
        fields = [
            "id", "domain", "verified", "verified_by", "verification_record", "dns_records", "verified_at",
            "last_checked_at", "last_check_error", "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(DnsRecordOutput(many=True))
    def get_dns_records(self, domain: SendingDomain) -> list[dict]:
        return sending_domain_dns_records(domain=domain)

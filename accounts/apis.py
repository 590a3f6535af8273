from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action

from accounts import selectors, services
from accounts.api import WorkspaceCrudViewSet, crud_schema
from accounts.models import SendingDomain
from accounts.serializers import SendingDomainInput, SendingDomainOutput


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents accounts.authentication.ApiKeyAuthentication as the schema's BearerAuth scheme."""

    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "BearerAuth"

    def get_security_requirement(self, auto_schema):
        return None  # SPECTACULAR_SETTINGS["SECURITY"] already requires BearerAuth on every operation

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}


@crud_schema("sending domain", SendingDomainInput, SendingDomainOutput, tags=["Sending domains"])
class SendingDomainViewSet(WorkspaceCrudViewSet):
    """Domains the workspace sends from. The domain itself is immutable: delete and add another."""

    http_method_names = ["get", "post", "delete", "head", "options"]
    queryset = SendingDomain.objects.none()  # for the schema only; requests use list_selector
    input_serializer_class = SendingDomainInput
    output_serializer_class = SendingDomainOutput
    list_selector = selectors.sending_domain_list
    create_service = services.sending_domain_create
    delete_service = services.sending_domain_delete

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no workspace
            return self.queryset
        return super().get_queryset()

    @extend_schema(
        summary="Check the domain's DNS records",
        description=(
            "Looks up each record of `dns_records` (verification, DKIM, SPF, DMARC) and stores each one's "
            "`status` and `message`. The verification and DKIM records found: the domain becomes verified. "
            "SPF and DMARC only warn. A pending DKIM key found published becomes the signing key. A failed "
            "check answers 200 with `verified` unchanged and the blocking reasons in `last_check_error`."
        ),
        request=None,
        responses=SendingDomainOutput,
        tags=["Sending domains"],
    )
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        return self.render(services.sending_domain_verify(workspace=self.workspace, domain_id=pk))

    @extend_schema(
        summary="Rotate the domain's DKIM key",
        description=(
            "Adds a new key under a new selector, `key_status` pending, to `dns_records`. Publish it and call "
            "verify: once the record is found, the new key signs and the old one retires (remove its record a "
            "few days later). Called again while a rotation is pending, it keeps the pending key."
        ),
        request=None,
        responses=SendingDomainOutput,
        tags=["Sending domains"],
    )
    @action(detail=True, methods=["post"], url_path="rotate-dkim-key")
    def rotate_dkim_key(self, request, pk=None):
        return self.render(services.sending_domain_rotate_key(workspace=self.workspace, domain_id=pk))

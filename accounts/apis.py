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
        summary="Check the domain's verification TXT record",
        description=(
            "Looks up the TXT records of the domain. Found: the domain becomes verified. Not found: "
            "200 with `verified` unchanged and the reason in `last_check_error`."
        ),
        request=None,
        responses=SendingDomainOutput,
        tags=["Sending domains"],
    )
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        return self.render(services.sending_domain_verify(workspace=self.workspace, domain_id=pk))

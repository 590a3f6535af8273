from campaigns import selectors, services
from campaigns.models import Template
from campaigns.serializers import TemplateInput, TemplateOutput
from common.api import WorkspaceCrudViewSet, crud_schema


@crud_schema("template", TemplateInput, TemplateOutput, tags=["Templates"])
class TemplateViewSet(WorkspaceCrudViewSet):
    """Reusable subject, html and text, personalised with Jinja2 (`{{ first_name }}`) in a sandbox."""

    queryset = Template.objects.none()  # for the schema only; requests use list_selector
    input_serializer_class = TemplateInput
    output_serializer_class = TemplateOutput
    list_selector = selectors.template_list
    create_service = services.template_create
    update_service = services.template_update
    delete_service = services.template_delete

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no workspace
            return self.queryset
        return super().get_queryset()

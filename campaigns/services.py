from django.db import IntegrityError, transaction

from accounts.models import Workspace
from campaigns.models import Template
from common import errors
from common.rendering import validate_template


def template_check(*, name: str, subject: str, html: str, text: str) -> None:
    """The rules of a template's content, shared by the services below and the admin form: raises
    ValidationError with every field's problems at once."""
    problems: dict[str, list[str]] = {}
    if not name.strip():
        problems["name"] = ["This field may not be blank."]
    if "\r" in subject or "\n" in subject:
        problems["subject"] = ["The subject must be a single line."]
    for field, source in (("subject", subject), ("html", html), ("text", text)):
        try:
            validate_template(source, field=field)
        except errors.ValidationError as exc:
            problems.setdefault(field, []).extend(exc.details[field])
    if not html.strip() and not text.strip():
        # A campaign using it would count as having content and then send an empty message.
        problems["non_field_errors"] = ["A template needs html, text, or both."]
    if problems:
        raise errors.ValidationError(details=problems)


def template_create(*, workspace: Workspace, name: str, subject: str = "", html: str = "", text: str = "") -> Template:
    name = name.strip()
    template_check(name=name, subject=subject, html=html, text=text)
    template = Template(workspace=workspace, name=name, subject=subject, html=html, text=text)
    return _template_save(template)


def template_update(
    *,
    workspace: Workspace,
    instance: Template,
    name: str | None = None,
    subject: str | None = None,
    html: str | None = None,
    text: str | None = None,
) -> Template:
    """Change any of the given fields (None leaves one as it is); the result is checked as a whole."""
    if instance.workspace_id != workspace.pk:
        raise errors.NotFound()
    changes = {"name": name.strip() if name is not None else None, "subject": subject, "html": html, "text": text}
    for field, value in changes.items():
        if value is not None:
            setattr(instance, field, value)
    template_check(name=instance.name, subject=instance.subject, html=instance.html, text=instance.text)
    return _template_save(instance)


def template_delete(*, workspace: Workspace, instance: Template) -> None:
    deleted, _ = Template.objects.filter(workspace=workspace, pk=instance.pk).delete()
    if not deleted:
        raise errors.NotFound()


def _template_save(template: Template) -> Template:
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError:
        raise errors.ValidationError.for_field(
            "name", f"A template named '{template.name}' already exists in this workspace."
        ) from None
    return template

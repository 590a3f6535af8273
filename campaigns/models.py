import uuid

from django.db import models

from accounts.models import Workspace


class Template(models.Model):
    """Reusable content: subject, html and text, personalised with Jinja2 in a sandbox."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=998, blank=True)
    html = models.TextField(blank=True)
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_template_name_per_workspace")]

    def __str__(self) -> str:
        return self.name

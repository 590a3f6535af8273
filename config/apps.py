from django.contrib.admin.apps import AdminConfig


class MailschedAdminConfig(AdminConfig):
    """django.contrib.admin with the project's site (config.admin_site) as `admin.site`."""

    default_site = "config.admin_site.MailschedAdminSite"

    def ready(self):
        super().ready()  # autodiscover: every app's admin module is registered by now
        from django.contrib import admin

        admin.site.restrict_system_models()

from django.db import transaction

from accounts.management.commands._base import ServiceCommand
from accounts.selectors import sending_domain_dns_records, workspace_get_by_name
from accounts.services import sending_domain_get_or_create, sending_domain_mark_verified


class Command(ServiceCommand):
    help = (
        "Add a sending domain to a workspace (or take the one it has, e.g. created through the API) and print "
        "the DNS records to publish. The last line is its id."
    )

    def add_arguments(self, parser):
        parser.add_argument("domain", help="The domain to send from, e.g. mail.example.com.")
        parser.add_argument("--workspace", required=True, help="Workspace name.")
        parser.add_argument(
            "--verified", action="store_true", help="Mark it verified now: the operator's override of the DNS check."
        )

    def handle(self, *args, domain, workspace, verified, **options):
        ws = workspace_get_by_name(name=workspace)
        with transaction.atomic():
            sending_domain, created = sending_domain_get_or_create(workspace=ws, domain=domain)
            if verified:
                sending_domain = sending_domain_mark_verified(workspace=ws, domain_id=sending_domain.pk)
        state = "verified (admin override)" if sending_domain.verified else "not verified yet"
        verb = "Added sending domain" if created else "Sending domain"
        self.stdout.write(f"{verb} {sending_domain.domain} of '{ws.name}', {state}.")
        self.stdout.write("Publish these DNS records, then run the DNS check (POST sending-domains/{id}/verify):")
        for record in sending_domain_dns_records(domain=sending_domain):
            self.stdout.write(f"  {record['purpose']:<12} {record['type']} {record['name']}  {record['value']}")
        self.stdout.write(str(sending_domain.id))

"""Alternative (b) of bench/send.py: the design most Django projects start with, one Celery task per
recipient. Each task loads its contact and campaign, renders with Django's template engine, builds a
Django EmailMultiAlternatives and sends it with `send()`, which opens (and closes) its own SMTP
connection. Run by a real worker: `celery -A config worker -Q naive --include bench.naive_tasks`."""

from celery import shared_task

QUEUE = "naive"


@shared_task(queue=QUEUE, acks_late=True, ignore_result=True)
def send_one(contact_id: str, campaign_id: str) -> None:
    from django.core.mail import EmailMultiAlternatives
    from django.template import Context, Template

    from audience.models import Contact
    from campaigns.models import Campaign

    contact = Contact.objects.get(pk=contact_id)
    campaign = Campaign.objects.get(pk=campaign_id)
    context = Context(
        {
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "email": contact.email,
            "unsubscribe_url": f"https://example.com/u/{contact.pk}",
        }
    )
    message = EmailMultiAlternatives(
        subject=Template(campaign.subject).render(context),
        body=Template(campaign.text).render(context),
        from_email=f"{campaign.from_name} <{campaign.from_email}>",
        to=[contact.email],
        headers={"List-Unsubscribe": f"<https://example.com/u/{contact.pk}>"},
    )
    message.attach_alternative(Template(campaign.html).render(context), "text/html")
    message.send()

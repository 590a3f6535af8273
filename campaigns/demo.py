"""The demo a newcomer looks at after `scripts/run` (`manage.py seed_demo`): a workspace with a few thousand
contacts across time zones, synthetic open and click histories in the event table, labels, segments and
three campaigns (one due a minute after seeding, one with send-time optimisation, one recurring weekly).

Everything is found by name before it is created, so seeding twice adds nothing. Contacts and their
histories are written in bulk, as an import writes them: one service call per row would take a minute on
SQLite for what is sample data."""

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace
from accounts.services import sending_domain_get_or_create, sending_domain_mark_verified, workspace_create
from audience.models import Contact, Label, Segment
from audience.services import label_create, segment_create
from campaigns.models import Campaign
from campaigns.services import campaign_create, schedule_parse
from delivery.models import Event
from delivery.services import events_record

DEMO_WORKSPACE = "Demo"
DEMO_DOMAIN = "mail.demo.example"
DEMO_SOURCE = "seed_demo"
# Where the demo's recipients live, and the local hour each zone's readers tend to open mail.
ZONES = [
    ("America/Los_Angeles", 7),
    ("America/New_York", 8),
    ("America/Sao_Paulo", 12),
    ("Europe/London", 9),
    ("Europe/Berlin", 18),
    ("Africa/Lagos", 13),
    ("Asia/Kolkata", 20),
    ("Asia/Jakarta", 7),
    ("Asia/Tokyo", 21),
    ("Australia/Sydney", 8),
]
FIRST_NAMES = ["Ana", "Budi", "Chloé", "Dmitri", "Emeka", "Fatima", "Grace", "Hiro", "Ines", "Jamal", "Kai", "Lena"]
VIP_COUNT = 20
HISTORY_DAYS = 90
CHUNK = 1000


@dataclass
class DemoSeed:
    workspace: Workspace
    created: list[str] = field(default_factory=list)


@transaction.atomic
def demo_seed(*, contacts: int = 3000, now: datetime | None = None) -> DemoSeed:
    now = now or timezone.now()
    workspace = Workspace.objects.filter(name=DEMO_WORKSPACE).first()
    seed = DemoSeed(workspace=workspace or workspace_create(name=DEMO_WORKSPACE, timezone="UTC"))
    if workspace is None:
        seed.created.append("workspace Demo")
    workspace = seed.workspace
    domain, created = sending_domain_get_or_create(workspace=workspace, domain=DEMO_DOMAIN)
    # A demo domain cannot publish DNS records: the operator's override, as `add_sending_domain --verified`.
    sending_domain_mark_verified(workspace=workspace, domain_id=domain.pk)
    if created:
        seed.created.append(f"sending domain {DEMO_DOMAIN} (verified)")
    labels = {name: _label(seed, name) for name in ("newsletter", "customers", "vip")}
    _contacts(seed, labels, count=contacts, now=now)
    _segment(seed, "Pro plan", {"all": [{"attribute": "plan", "op": "eq", "value": "pro"}]})
    _segment(
        seed,
        "Customers in the Americas",
        {
            "all": [
                {"label": str(labels["customers"].id), "op": "has"},
                {"field": "timezone", "op": "contains", "value": "America/"},
            ]
        },
    )
    _campaigns(seed, labels, now=now)
    return seed


def _label(seed: DemoSeed, name: str) -> Label:
    label = Label.objects.filter(workspace=seed.workspace, name=name).first()
    if label is None:
        label = label_create(workspace=seed.workspace, name=name)
        seed.created.append(f"label {name}")
    return label


def _segment(seed: DemoSeed, name: str, rules: dict) -> None:
    if not Segment.objects.filter(workspace=seed.workspace, name=name).exists():
        segment_create(workspace=seed.workspace, name=name, rules=rules)
        seed.created.append(f"segment {name}")


def _contacts(seed: DemoSeed, labels: dict[str, Label], *, count: int, now: datetime) -> None:
    workspace = seed.workspace
    have = set(
        Contact.objects.filter(workspace=workspace, email__endswith="@demo.example").values_list("email", flat=True)
    )
    rng = random.Random(15)  # the same demo every time
    made = 0
    for start in range(0, count, CHUNK):
        rows, memberships, events = [], [], []
        for i in range(start, min(start + CHUNK, count)):
            zone, open_hour = ZONES[i % len(ZONES)]
            email = f"reader{i:05d}@demo.example"
            plan = "pro" if rng.random() < 0.25 else "free"
            if email in have:
                continue
            contact = Contact(
                workspace=workspace,
                email=email,
                first_name=FIRST_NAMES[i % len(FIRST_NAMES)],
                last_name=f"Reader {i}",
                timezone=zone,
                attributes={"plan": plan},
            )
            rows.append(contact)
            names = ["newsletter"] + (["customers"] if i % 3 == 0 else []) + (["vip"] if i < VIP_COUNT else [])
            memberships += [(contact, labels[name]) for name in names]
            events += _history(workspace, email, zone, open_hour, rng, now=now)
        if not rows:
            continue
        Contact.objects.bulk_create(rows)
        Contact.labels.through.objects.bulk_create(
            Contact.labels.through(contact_id=contact.id, label_id=label.id) for contact, label in memberships
        )
        events_record(events=events)
        made += len(rows)
    if made:
        seed.created.append(f"{made} contacts with their open and click histories")


def _history(workspace, email: str, zone: str, open_hour: int, rng: random.Random, *, now: datetime) -> list[Event]:
    """Opens (and some clicks) over the last 90 days, most near the zone's usual hour, some anywhere: the
    kind of history send-time optimisation learns from. About one contact in five never opened."""
    if rng.random() < 0.2:
        return []
    local = ZoneInfo(zone)
    events = []
    for _ in range(rng.randint(1, 12)):
        day = (now - timedelta(days=rng.randint(1, HISTORY_DAYS))).astimezone(local)
        hour = open_hour if rng.random() < 0.7 else rng.randint(0, 23)
        at = day.replace(hour=hour, minute=rng.randint(0, 59), second=rng.randint(0, 59), microsecond=0)
        kind = Event.Type.CLICKED if rng.random() < 0.2 else Event.Type.OPENED
        events.append(Event(workspace=workspace, type=kind, occurred_at=at, email=email, data={"source": DEMO_SOURCE}))
    return events


def _campaigns(seed: DemoSeed, labels: dict[str, Label], *, now: datetime) -> None:
    def content(subject: str, body: str) -> dict:
        return {
            "subject": subject,
            "from_name": "Demo News",
            "from_email": f"news@{DEMO_DOMAIN}",
            "html": f'<p>Hello {{{{ first_name }}}},</p><p>{body}</p><p><a href="https://example.com/tour">Take '
            "the tour</a></p>",
            "text": f"Hello {{{{ first_name }}}},\n\n{body}\n\nhttps://example.com/tour",
            "tracking": {"opens": True, "clicks": True},
        }

    plans = [
        (
            "Welcome (a minute after seeding)",
            {
                **content(
                    "Welcome, {{ first_name }}",
                    "This is the demo's first campaign, sent a minute after seeding to the vip label.",
                ),
                "audience": {"include_labels": [str(labels["vip"].id)]},
            },
            lambda: schedule_parse(scheduled_at=(now + timedelta(minutes=1)).isoformat(), now=now),
        ),
        (
            "Product tour (send-time optimised)",
            {
                **content("A tour of what is new", "Each reader gets this at the hour they usually read mail."),
                "audience": {"include_labels": [str(labels["newsletter"].id)]},
            },
            lambda: schedule_parse(
                scheduled_at=(now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0).isoformat(),
                send_time_optimization={"window_hours": 24, "holdout_percent": 10},
                now=now,
            ),
        ),
        (
            "Weekly digest",
            {
                **content("Your weekly digest", "Every Monday at 09:00 in each reader's own time zone."),
                "audience": {"include_labels": [str(labels["customers"].id)]},
            },
            lambda: schedule_parse(
                recurring_config={
                    "frequency": "weekly",
                    "days_of_week": [1],
                    "time": "09:00",
                    "time_zone": "Europe/London",
                },
                recipient_local_time=True,
                now=now,
            ),
        ),
    ]
    for name, fields, schedule in plans:
        if Campaign.objects.filter(workspace=seed.workspace, name=name).exists():
            continue
        campaign_create(workspace=seed.workspace, fields={"name": name, **fields}, schedule=schedule(), now=now)
        seed.created.append(f"campaign {name}")

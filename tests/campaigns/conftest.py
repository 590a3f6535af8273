import pytest

from tests.factories import CampaignFactory, ContactFactory, LabelFactory, SendingDomainFactory


@pytest.fixture
def verified_domain(workspace):
    return SendingDomainFactory(workspace=workspace, domain="mail.example.com", verified=True)


@pytest.fixture
def customers(workspace):
    label = LabelFactory(workspace=workspace, name="customers")
    ContactFactory.create_batch(3, workspace=workspace, labels=[label])
    return label


@pytest.fixture
def ready_campaign(workspace, verified_domain, customers):
    return CampaignFactory(
        workspace=workspace,
        name="Spring sale",
        audience={
            "include_labels": [str(customers.id)],
            "exclude_labels": [],
            "include_segments": [],
            "exclude_segments": [],
        },
    )


@pytest.fixture
def draft_payload(customers):
    return {
        "name": "Spring sale",
        "subject": "Hello {{ first_name }}",
        "from_name": "Acme",
        "from_email": "news@mail.example.com",
        "html": "<p>Hi {{ first_name }}</p>",
        "text": "Hi {{ first_name }}",
        "audience": {"include_labels": [str(customers.id)]},
    }


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client

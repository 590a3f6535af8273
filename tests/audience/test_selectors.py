import pytest

from audience.models import Contact
from audience.selectors import audience_sendable
from tests.factories import ContactFactory, LabelFactory, SegmentFactory, SuppressionFactory


def _emails(queryset) -> set[str]:
    return set(queryset.values_list("email", flat=True))


@pytest.fixture
def labels(workspace):
    return LabelFactory(workspace=workspace, name="news"), LabelFactory(workspace=workspace, name="vip")


def test_any_include_label_or_segment_selects(workspace, labels):
    news, vip = labels
    ContactFactory(workspace=workspace, email="news@x.org", labels=[news])
    ContactFactory(workspace=workspace, email="vip@x.org", labels=[vip])
    ContactFactory(workspace=workspace, email="id@x.org", attributes={"country": "ID"})
    ContactFactory(workspace=workspace, email="nobody@x.org")
    segment = SegmentFactory(
        workspace=workspace, rules={"all": [{"attribute": "country", "op": "eq", "value": "ID"}]}
    )
    result = audience_sendable(
        workspace=workspace, include_labels=[news.id, vip.id], include_segments=[segment.id]
    )
    assert _emails(result) == {"news@x.org", "vip@x.org", "id@x.org"}


def test_contact_with_several_include_labels_appears_once(workspace, labels):
    ContactFactory(workspace=workspace, email="both@x.org", labels=list(labels))
    result = audience_sendable(workspace=workspace, include_labels=[label.id for label in labels])
    assert list(result.values_list("email", flat=True)) == ["both@x.org"]


def test_exclude_label_and_segment_remove_contacts(workspace, labels):
    news, vip = labels
    ContactFactory(workspace=workspace, email="keep@x.org", labels=[news])
    ContactFactory(workspace=workspace, email="vip@x.org", labels=[news, vip])
    ContactFactory(workspace=workspace, email="churned@x.org", labels=[news], attributes={"churned": True})
    churned = SegmentFactory(
        workspace=workspace, rules={"all": [{"attribute": "churned", "op": "eq", "value": True}]}
    )
    result = audience_sendable(
        workspace=workspace, include_labels=[news.id], exclude_labels=[vip.id], exclude_segments=[churned]
    )
    assert _emails(result) == {"keep@x.org"}


def test_exclude_segment_keeps_contacts_lacking_the_attribute(workspace, labels):
    news, _ = labels
    ContactFactory(workspace=workspace, email="no-country@x.org", labels=[news])
    ContactFactory(workspace=workspace, email="id@x.org", labels=[news], attributes={"country": "ID"})
    segment = SegmentFactory(
        workspace=workspace, rules={"all": [{"attribute": "country", "op": "eq", "value": "ID"}]}
    )
    result = audience_sendable(workspace=workspace, include_labels=[news.id], exclude_segments=[segment.id])
    assert _emails(result) == {"no-country@x.org"}


@pytest.mark.parametrize(
    "status", [Contact.Status.UNSUBSCRIBED, Contact.Status.BOUNCED, Contact.Status.COMPLAINED]
)
def test_only_subscribed_contacts_are_sendable(workspace, labels, status):
    ContactFactory(workspace=workspace, email="off@x.org", labels=[labels[0]], status=status)
    ContactFactory(workspace=workspace, email="on@x.org", labels=[labels[0]])
    assert _emails(audience_sendable(workspace=workspace, include_labels=[labels[0].id])) == {"on@x.org"}


def test_suppressed_emails_are_not_sendable(workspace, other_workspace, labels):
    ContactFactory(workspace=workspace, email="suppressed@x.org", labels=[labels[0]])
    ContactFactory(workspace=workspace, email="other-ws-suppressed@x.org", labels=[labels[0]])
    SuppressionFactory(workspace=workspace, email="suppressed@x.org")
    SuppressionFactory(workspace=other_workspace, email="other-ws-suppressed@x.org")
    assert _emails(audience_sendable(workspace=workspace, include_labels=[labels[0].id])) == {
        "other-ws-suppressed@x.org"
    }


def test_no_include_selects_nobody(workspace):
    ContactFactory(workspace=workspace)
    assert _emails(audience_sendable(workspace=workspace)) == set()


def test_another_workspaces_labels_and_segments_select_nothing(workspace, other_workspace):
    theirs = LabelFactory(workspace=other_workspace)
    ContactFactory(
        workspace=other_workspace, email="theirs@x.org", labels=[theirs], attributes={"country": "ID"}
    )
    mine = ContactFactory(workspace=workspace, email="mine@x.org", attributes={"country": "ID"})
    mine.labels.add(theirs)  # a cross-workspace link the services refuse; the selector must not trust it
    their_segment = SegmentFactory(workspace=other_workspace)
    result = audience_sendable(
        workspace=workspace, include_labels=[theirs.id], include_segments=[their_segment.id]
    )
    assert _emails(result) == set()


def test_resolution_is_one_query(workspace, labels, django_assert_num_queries):
    news, vip = labels
    for n in range(10):
        ContactFactory(
            workspace=workspace,
            email=f"n{n}@x.org",
            attributes={"n": n},
            labels=([news] if n % 2 else []) + ([vip] if n == 7 else []),
        )
    SuppressionFactory(workspace=workspace, email="n9@x.org")
    include = SegmentFactory(workspace=workspace, rules={"all": [{"attribute": "n", "op": "lt", "value": 4}]})
    exclude = SegmentFactory(workspace=workspace, rules={"all": [{"attribute": "n", "op": "eq", "value": 3}]})
    with django_assert_num_queries(1):
        contacts = list(
            audience_sendable(
                workspace=workspace,
                include_labels=[news.id],
                exclude_labels=[vip.id],
                include_segments=[include],
                exclude_segments=[exclude],
            )
        )
    assert sorted(c.attributes["n"] for c in contacts) == [0, 1, 2, 5]


def test_segment_ids_are_loaded_in_one_query(workspace, django_assert_num_queries):
    segments = [SegmentFactory(workspace=workspace) for _ in range(3)]
    with django_assert_num_queries(1):
        queryset = audience_sendable(
            workspace=workspace,
            include_segments=[s.id for s in segments[:2]],
            exclude_segments=[segments[2].id],
        )
    with django_assert_num_queries(1):
        list(queryset)

import pytest

from audience.models import Contact
from audience.segments import compile_rules, validate_rules
from common import errors
from tests.factories import ContactFactory, LabelFactory


def _error_path(rules) -> str:
    with pytest.raises(errors.ValidationError) as exc_info:
        validate_rules(rules)
    assert len(exc_info.value.details) == 1
    path = next(iter(exc_info.value.details))
    assert path in exc_info.value.message
    return path


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        ([], "rules"),
        ({"none": []}, "rules"),
        ({"all": []}, "rules.all"),
        ({"all": "x"}, "rules.all"),
        ({"all": [1]}, "rules.all[0]"),
        ({"all": [{"attribute": "plan", "op": "like", "value": "x"}]}, "rules.all[0].op"),
        ({"all": [{"attribute": "", "op": "eq", "value": "x"}]}, "rules.all[0].attribute"),
        ({"all": [{"attribute": "plan", "op": "eq"}]}, "rules.all[0].value"),
        ({"all": [{"attribute": "plan", "op": "eq", "value": {"a": 1}}]}, "rules.all[0].value"),
        ({"all": [{"attribute": "plan", "op": "in", "value": []}]}, "rules.all[0].value"),
        ({"all": [{"attribute": "plan", "op": "in", "value": [1, [2]]}]}, "rules.all[0].value[1]"),
        ({"all": [{"attribute": "plan", "op": "exists", "value": 1}]}, "rules.all[0].value"),
        ({"all": [{"attribute": "age", "op": "gt", "value": True}]}, "rules.all[0].value"),
        ({"all": [{"attribute": "plan", "op": "eq", "value": "a\x00b"}]}, "rules.all[0].value"),
        ({"all": [{"attribute": "plan", "op": "eq", "value": "x", "extra": 1}]}, "rules.all[0].extra"),
        ({"all": [{"label": "not-a-uuid", "op": "has"}]}, "rules.all[0].label"),
        ({"all": [{"label": "6f1c3a52-9d3e-4c55-8f0b-0b7f9f0e6a11", "op": "eq"}]}, "rules.all[0].op"),
        ({"all": [{"field": "password", "op": "eq", "value": "x"}]}, "rules.all[0].field"),
        ({"all": [{"field": "status", "op": "eq", "value": "gone"}]}, "rules.all[0].value"),
        ({"all": [{"field": "email", "op": "gt", "value": "a"}]}, "rules.all[0].op"),
        ({"all": [{"field": "email", "attribute": "x", "op": "eq", "value": "a"}]}, "rules.all[0]"),
        ({"any": [{"all": [{"attribute": "a", "op": "eq", "value": 1}, {"x": 1}]}]}, "rules.any[0].all[1]"),
        ({"all": [{"any": [{"attribute": "a", "op": "eq", "value": 1}]}], "any": []}, "rules"),
    ],
)
def test_invalid_rules_name_the_bad_path(rules, path):
    assert _error_path(rules) == path


def test_nesting_deeper_than_the_cap_is_rejected():
    rules = {"all": [{"attribute": "a", "op": "exists"}]}
    for _ in range(5):
        rules = {"any": [rules]}
    assert _error_path(rules) == "rules.any[0].any[0].any[0].any[0].any[0]"


def test_more_conditions_than_the_cap_are_rejected():
    rules = {"any": [{"attribute": "a", "op": "eq", "value": i} for i in range(101)]}
    assert _error_path(rules) == "rules.any[100]"


def test_valid_rules_pass():
    validate_rules(
        {
            "any": [
                {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
                {
                    "all": [
                        {"field": "status", "op": "eq", "value": "subscribed"},
                        {"attribute": "age", "op": "gte", "value": 18},
                    ]
                },
                {"label": "6f1c3a52-9d3e-4c55-8f0b-0b7f9f0e6a11", "op": "has_not"},
            ]
        }
    )


def _matching(workspace, rules) -> set[str]:
    return set(
        Contact.objects.filter(compile_rules(workspace=workspace, rules=rules)).values_list(
            "email", flat=True
        )
    )


@pytest.fixture
def people(workspace):
    return {
        "ana": ContactFactory(
            workspace=workspace, email="ana@x.org", attributes={"plan": "pro", "age": 30, "vip": True}
        ),
        "bo": ContactFactory(workspace=workspace, email="bo@x.org", attributes={"plan": "free", "age": 17}),
        "cy": ContactFactory(
            workspace=workspace, email="cy@x.org", attributes={"age": "40", "since": "2024-05-01"}
        ),
        "di": ContactFactory(workspace=workspace, email="di@x.org", attributes={}),
    }


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"op": "eq", "value": "pro"}, {"ana"}),
        ({"op": "neq", "value": "pro"}, {"bo", "cy", "di"}),
        ({"op": "in", "value": ["pro", "free"]}, {"ana", "bo"}),
        ({"op": "not_in", "value": ["pro", "free"]}, {"cy", "di"}),
        ({"op": "contains", "value": "RE"}, {"bo"}),
        ({"op": "exists"}, {"ana", "bo"}),
        ({"op": "not_exists"}, {"cy", "di"}),
    ],
)
def test_attribute_operators_on_text(workspace, people, condition, expected):
    assert _matching(workspace, {"all": [{"attribute": "plan", **condition}]}) == {
        f"{n}@x.org" for n in expected
    }


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [("gt", 18, {"ana"}), ("gte", 17, {"ana", "bo"}), ("lt", 30, {"bo"}), ("lte", 30, {"ana", "bo"})],
)
def test_numeric_comparison_ignores_values_stored_as_text(workspace, people, op, value, expected):
    # cy's age is the string "40": comparing it with a number would differ between databases.
    assert _matching(workspace, {"all": [{"attribute": "age", "op": op, "value": value}]}) == {
        f"{n}@x.org" for n in expected
    }


def test_string_comparison_orders_iso_dates(workspace, people):
    assert _matching(workspace, {"all": [{"attribute": "since", "op": "gte", "value": "2024-01-01"}]}) == {
        "cy@x.org"
    }


def test_boolean_attribute_equality(workspace, people):
    assert _matching(workspace, {"all": [{"attribute": "vip", "op": "eq", "value": True}]}) == {"ana@x.org"}


def test_attribute_named_like_a_lookup_is_one_key(workspace):
    ContactFactory(workspace=workspace, email="k@x.org", attributes={"contains": "x", "a__b": 1})
    ContactFactory(workspace=workspace, email="n@x.org", attributes={"a": {"b": 1}})
    assert _matching(workspace, {"all": [{"attribute": "contains", "op": "eq", "value": "x"}]}) == {"k@x.org"}
    assert _matching(workspace, {"all": [{"attribute": "a__b", "op": "eq", "value": 1}]}) == {"k@x.org"}


def test_any_group_is_a_union_and_all_an_intersection(workspace, people):
    rules = {
        "any": [
            {"attribute": "plan", "op": "eq", "value": "free"},
            {"all": [{"attribute": "age", "op": "exists"}, {"attribute": "plan", "op": "not_exists"}]},
        ]
    }
    assert _matching(workspace, rules) == {"bo@x.org", "cy@x.org"}


def test_two_label_conditions_in_one_group_need_both_labels(workspace):
    red, blue = LabelFactory(workspace=workspace), LabelFactory(workspace=workspace)
    ContactFactory(workspace=workspace, email="both@x.org", labels=[red, blue])
    ContactFactory(workspace=workspace, email="red@x.org", labels=[red])
    rules = {"all": [{"label": str(red.id), "op": "has"}, {"label": str(blue.id), "op": "has"}]}
    assert _matching(workspace, rules) == {"both@x.org"}


def test_has_not_label_matches_contacts_without_any_label(workspace):
    red = LabelFactory(workspace=workspace)
    ContactFactory(workspace=workspace, email="red@x.org", labels=[red])
    ContactFactory(workspace=workspace, email="none@x.org")
    assert _matching(workspace, {"all": [{"label": str(red.id), "op": "has_not"}]}) == {"none@x.org"}


def test_field_conditions(workspace):
    ContactFactory(workspace=workspace, email="ana@x.org", first_name="Ana", status=Contact.Status.SUBSCRIBED)
    ContactFactory(workspace=workspace, email="bo@y.org", first_name="Bo", status=Contact.Status.BOUNCED)
    assert _matching(workspace, {"all": [{"field": "first_name", "op": "eq", "value": "ANA"}]}) == {
        "ana@x.org"
    }
    assert _matching(workspace, {"all": [{"field": "email", "op": "contains", "value": "@Y."}]}) == {
        "bo@y.org"
    }
    assert _matching(workspace, {"all": [{"field": "email", "op": "eq", "value": "Ana@X.org"}]}) == {
        "ana@x.org"
    }
    assert _matching(workspace, {"all": [{"field": "status", "op": "not_in", "value": ["bounced"]}]}) == {
        "ana@x.org"
    }


def test_compiled_rules_never_select_another_workspace(workspace, other_workspace):
    ContactFactory(workspace=other_workspace, email="theirs@x.org", attributes={"plan": "pro"})
    assert _matching(workspace, {"all": [{"attribute": "plan", "op": "eq", "value": "pro"}]}) == set()


def test_label_of_another_workspace_never_matches(workspace, other_workspace):
    foreign = LabelFactory(workspace=other_workspace)
    contact = ContactFactory(workspace=workspace, email="mine@x.org")
    # Linked directly, bypassing the services, to prove the compiled rule checks the label's workspace too.
    contact.labels.add(foreign)
    assert _matching(workspace, {"all": [{"label": str(foreign.id), "op": "has"}]}) == set()

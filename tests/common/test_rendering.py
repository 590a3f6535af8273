import pytest

from common import errors
from common.rendering import TemplateRenderError, _compile, contact_context, render, validate_template
from tests.factories import ContactFactory, WorkspaceFactory

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ namespace.__init__.__globals__['os'] }}",
    "{{ first_name['__class__'] }}",
    "{{ first_name|attr('__class__') }}",
    "{% for c in ''.__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
]


def test_render_substitutes_context_values():
    assert render("Hi {{ first_name }}!", {"first_name": "Ana"}, html=False) == "Hi Ana!"


def test_html_render_escapes_values():
    assert render("<p>{{ name }}</p>", {"name": "<script>x</script>"}, html=True) == (
        "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    )


def test_text_render_does_not_escape():
    assert render("{{ name }}", {"name": "Tom & Jerry <tj>"}, html=False) == "Tom & Jerry <tj>"


def test_undefined_names_render_empty_even_when_chained_or_called():
    assert render("[{{ missing }}|{{ company.address.city }}|{{ nope() }}]", {}, html=True) == "[||]"


def test_undefined_name_works_in_conditions_and_defaults():
    assert render("{% if plan %}x{% else %}{{ plan|default('free') }}{% endif %}", {}, html=False) == "free"


def test_compiled_template_is_reused_for_the_same_source():
    source = "Cached {{ first_name }} " + str(id(object()))
    _compile.cache_clear()
    render(source, {"first_name": "a"}, html=False)
    render(source, {"first_name": "b"}, html=False)
    assert _compile.cache_info().hits == 1
    assert _compile.cache_info().misses == 1


@pytest.mark.parametrize("source", ESCAPES)
@pytest.mark.parametrize("html", [True, False])
def test_sandbox_escape_renders_nothing(source, html):
    assert render(source, {"first_name": "Ana"}, html=html) == ""


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escape_is_refused_at_save_time(source):
    with pytest.raises(errors.ValidationError) as exc_info:
        validate_template(source, field="html")
    assert "private attribute" in exc_info.value.details["html"][0]


def test_name_built_at_run_time_still_renders_nothing():
    # Passes the save-time check (the name is not a literal); the sandbox blocks it at render time.
    source = "{{ first_name|attr('_' ~ '_class__') }}"
    validate_template(source, field="text")
    assert render(source, {"first_name": "Ana"}, html=False) == ""


def test_format_string_escape_renders_empty():
    assert render("{{ '{0.__class__.__mro__}'.format(first_name) }}", {"first_name": "Ana"}, html=False) == ""


def test_context_dicts_cannot_be_mutated():
    attributes = {"plan": "free"}
    render("{{ attributes.update({'plan': 'pro'}) }}", {"attributes": attributes}, html=False)
    assert attributes == {"plan": "free"}


def test_huge_repetition_is_a_render_error():
    # A resource limit, not an escape: the author sees why (docs/decisions/018), no blank field goes out.
    with pytest.raises(TemplateRenderError, match="Repetition would build more than 100000 items"):
        render("{{ 'x' * 1000000000 }}", {}, html=False)


def test_huge_power_is_a_render_error():
    with pytest.raises(TemplateRenderError, match="larger than 4096 bits"):
        render("{{ 9 ** 99 ** 99 }}", {}, html=False)


def test_include_is_refused_at_save_time():
    with pytest.raises(errors.ValidationError) as exc_info:
        validate_template("ok\n{% include 'other.html' %}", field="html")
    assert exc_info.value.details["html"][0].startswith("Template error on line 2:")


def test_nested_loops_over_huge_literal_ranges_are_refused_at_save_time():
    source = "ok\n{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}"
    with pytest.raises(errors.ValidationError) as exc_info:
        validate_template(source, field="html")
    assert exc_info.value.details["html"] == [
        "Template error on line 2: these loops would run 10000000000 times; a template may take at most 1000000 steps."
    ]


def test_a_literal_range_larger_than_the_sandbox_allows_is_refused_at_save_time():
    with pytest.raises(errors.ValidationError) as exc_info:
        validate_template("{% for i in range(200000) %}{{ i }}{% endfor %}", field="text")
    assert "range() may produce at most 100000 items" in exc_info.value.details["text"][0]


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(1000) %}{% for j in range(1000) %}{{ j }}{% endfor %}{% endfor %}",
        "{% for i in range(100000) %}{% for item in items %}{{ item }}{% endfor %}{% endfor %}",
        "{% for i in range(n) %}{% for j in range(n) %}{{ j }}{% endfor %}{% endfor %}",
    ],
)
def test_loops_within_the_step_budget_or_over_data_are_accepted_at_save_time(source):
    validate_template(source, field="html")


def test_save_time_loop_check_follows_the_step_setting(settings):
    settings.TEMPLATE_RENDER_MAX_STEPS = 100
    with pytest.raises(errors.ValidationError) as exc_info:
        validate_template("{% for i in range(10) %}{% for j in range(11) %}{% endfor %}{% endfor %}", field="html")
    assert exc_info.value.details["html"][0].endswith("would run 110 times; a template may take at most 100 steps.")


def test_syntax_error_names_field_and_line():
    with pytest.raises(errors.ValidationError) as exc_info:
        validate_template("line one\n{{ unclosed", field="subject")
    assert exc_info.value.details["subject"][0].startswith("Template syntax error on line 2:")


def test_runtime_error_of_the_template_raises_render_error():
    with pytest.raises(TemplateRenderError, match="ZeroDivisionError"):
        render("{{ 1 / 0 }}", {}, html=False)


def test_render_of_a_broken_template_raises_render_error():
    with pytest.raises(TemplateRenderError, match="line 1"):
        render("{{ broken", {}, html=False)


@pytest.mark.django_db
def test_contact_context_merges_attributes_without_overriding_built_ins():
    contact = ContactFactory(
        email="ana@example.org", first_name="Ana", last_name="Lee", timezone="Asia/Jakarta",
        attributes={"plan": "pro", "email": "spoof@evil.test", "first_name": "Mallory"},
    )
    context = contact_context(contact, {"order_id": 42, "plan": "enterprise", "last_name": "Override"})
    assert context["email"] == "ana@example.org"
    assert context["first_name"] == "Ana"
    assert context["last_name"] == "Lee"
    assert context["timezone"] == "Asia/Jakarta"
    assert context["plan"] == "enterprise"
    assert context["order_id"] == 42
    assert context["attributes"]["email"] == "spoof@evil.test"


@pytest.mark.django_db
def test_contact_context_timezone_falls_back_to_the_workspace():
    contact = ContactFactory(workspace=WorkspaceFactory(timezone="Europe/Paris"), timezone="")
    assert contact_context(contact, None)["timezone"] == "Europe/Paris"


@pytest.mark.django_db
def test_contact_fields_render_in_a_template():
    contact = ContactFactory(first_name="Ana", attributes={"city": "Bandung"})
    assert render("{{ first_name }} from {{ city }}", contact_context(contact, None), html=False) == "Ana from Bandung"

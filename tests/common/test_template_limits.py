"""The resource limits of the template sandbox (common.template_limits, docs/decisions/018): each hostile
template is refused with a TemplateRenderError before it builds anything large, and legitimate templates
render as before. Memory is checked with tracemalloc; time only through the deterministic step budget or
a fake clock, never measured."""

import tracemalloc

import pytest

from common import template_limits
from common.rendering import TemplateBudgetExceeded, TemplateRenderError, _compile, render, validate_template

# A refused operation builds nothing; what a template built before it stays under this...
PEAK_LIMIT_BYTES = 3_000_000
# ...unless it grew a value up to the largest a template may build (and the one it was made from).
GROWING_PEAK_LIMIT_BYTES = 2 * template_limits.MAX_OUTPUT_CHARS + 1_000_000

REPLACE_CHAIN = "{{ ('a' * 1000)" + "|replace('a', 'aaaaaaaaaa')" * 6 + " }}"

# Each builds gigabytes or hangs without the limits; (source, what the error says).
REFUSED = [
    ("{{ '{:>9999999999}'.format(1) }}", "asks for more than 5000000 characters"),
    ("{{ '{0:{1}}'.format(1, 9999999999) }}", "asks for more than 5000000 characters"),
    ("{{ ('{0}' * 20000).format('x' * 1000) }}", "format would build more than 5000000 characters"),
    ("{{ 'a'.center(2000000000) }}", "'center' would build 2000000000 characters"),
    ("{{ 'a'|center(2000000000) }}", "The 'center' filter would build 2000000000 characters"),
    (REPLACE_CHAIN, "The 'replace' filter would build 10000000 characters"),
    (
        "{{ ('a' * 1000)" + ".replace('a', 'aaaaaaaaaa')" * 4 + " }}",
        "'replace' would build 10000000 characters",
    ),
    ("{{ 'ab'.replace('', 'x' * 99999)|replace('', 'x' * 99999) }}", "The 'replace' filter would build"),
    ("{{ 'a'.ljust(2000000000) }}", "'ljust' would build"),
    ("{{ 'a'.rjust(2000000000, '-') }}", "'rjust' would build"),
    ("{{ 'a'.zfill(2000000000) }}", "'zfill' would build"),
    ("{{ ('\t' * 100000).expandtabs(100000) }}", "'expandtabs' would build"),
    ("{{ ('x' * 100000).join(['a'] * 100000) }}", "'join' would build"),
    ("{{ (['a'] * 100000)|join('x' * 100000) }}", "The 'join' filter would build"),
    ("{{ ('a' * 100000).translate({97: 'x' * 100000}) }}", "'translate' would build"),
    ("{{ '%999999999d' % 1 }}", "The format '%999999999d' asks for more than 5000000 characters"),
    ("{{ '%.999999999f' % 1.5 }}", "The format '%.999999999f' asks for more"),
    ("{{ '%*d' % (999999999, 1) }}", "The format '%*d' asks for more"),
    ("{{ ('%(a)s' * 20000) % {'a': 'x' * 1000} }}", "% formatting would build"),
    ("{{ '%999999999s'|format('x') }}", "asks for more than 5000000 characters"),
    ("{{ ('a ' * 50000)|wordwrap(1, wrapstring='x' * 100) }}", "The 'wordwrap' filter would build"),
    ("{{ ('a\n' * 50000)|indent(1000) }}", "The 'indent' filter would build"),
    ("{{ 'a\nb'|indent(2000000000) }}", "The 'indent' filter would build"),
    ("{{ {'a': [1]}|tojson(1000000000) }}", "The 'tojson' filter would build"),
    ("{{ ('see https://a.example ' * 2000)|urlize(target='t' * 10000) }}", "The 'urlize' filter would build"),
    ("{{ 'x' * 1000000000 }}", "Repetition would build more than 100000 items"),
    ("{{ [0] * 1000000000 }}", "Repetition would build more than 100000 items"),
    ("{{ ['x' * 100000] * 100000 }}", "Printing a value was given a list or mapping of more than 5000000"),
    ("{{ (['x' * 100000] * 100000)|join }}", "The 'join' filter was given a list or mapping of more than"),
    ("{{ {}.fromkeys(range(1000), 'x' * 100000)|string }}", "The 'string' filter was given a list or mapping"),
    ("{{ [1]|batch(1000000000, 'x')|list }}", "batch would repeat its filler into more than 100000 items"),
    ("{{ 5|round(-10000000) }}", "round takes a precision between -400 and 400"),
    ("{{ 1|round(1000000000, 'floor') }}", "round takes a precision between -400 and 400"),
    ("{{ ([[1]] * 50000)|sum(start=[]) }}", "sum adds numbers"),
    ("{{ 'x'.encode() }}", "'encode' makes bytes"),
    ("{{ (1).to_bytes(1000000000, 'big') }}", "'to_bytes' makes bytes"),
    ("{{ 9 ** 99 ** 99 }}", "The power would be larger than 4096 bits"),
    (
        "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
        "The product would be larger than 4096 bits",
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "'~' would build 8388608 characters",
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "'+' would build 8388608 characters",
    ),
    (
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "'+' would build more than 100000 items",
    ),
    (
        "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}",
        "Printing a value was given a list or mapping of more than 5000000",
    ),
    (
        "{% macro d(n) %}{% if n %}{% set s = d(n - 1) %}{{ s }}{{ s }}{% endif %}x{% endmacro %}{{ d(60) }}",
        "A block of the template would build 8388607 characters",
    ),
]


GROWING = {source for source, _ in REFUSED if "namespace(s=" in source or "macro d(n)" in source}


@pytest.mark.parametrize(("source", "message"), REFUSED, ids=[source[:50] for source, _ in REFUSED])
def test_hostile_template_is_refused_without_building_it(settings, source, message):
    settings.TEMPLATE_RENDER_BUDGET_SECONDS = 60  # tracemalloc slows everything; the size limits are tested here
    _compile(source, False)  # compiling is not what is measured here
    tracemalloc.start()
    try:
        with pytest.raises(TemplateRenderError) as exc_info:
            render(source, {}, html=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message in exc_info.value.message
    assert peak < (GROWING_PEAK_LIMIT_BYTES if source in GROWING else PEAK_LIMIT_BYTES)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ '{:>9999999999}'.format(1) }}", "asks for more"),
        ("{{ 'a'.center(2000000000) }}", "would build 2000000000 characters"),
        (REPLACE_CHAIN, "would build 10000000 characters"),
        ("{{ '%999999999d'|format(1) }}", "asks for more"),
    ],
)
def test_hostile_template_in_html_is_refused_the_same(source, message):
    with pytest.raises(TemplateRenderError, match=message):
        render(source, {}, html=True)


def test_a_literal_hostile_filter_compiles_without_folding_it():
    # Jinja folds filters of constants at compile time; the limit refuses there too, so saving returns.
    validate_template("{{ 'a'|center(2000000000) }}{{ 'b'|indent(2000000000) }}", field="html")


# --- the budget -------------------------------------------------------------------------------------------


@pytest.fixture
def small_budget(settings):
    settings.TEMPLATE_RENDER_MAX_STEPS = 10_000
    return settings


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% macro d(n) %}{% if n %}{{ d(n - 1) }}{{ d(n - 1) }}{% endif %}{% endmacro %}{{ d(60) }}",
        "{{ range(100000)|select|select|select|select|list|length }}",
        "{% for i in range(100000) %}{{ loop.index }}{% endfor %}",
        "{{ '{0:}'.format('') * 1 }}{{ ('{0:}' * 20000).format('') }}",
        "{% for x in tree recursive %}{{ loop(x.children) }}{% endfor %}",
    ],
)
def test_work_beyond_the_step_budget_took_too_long(small_budget, source):
    tree = [{"children": [{"children": []}] * 100}] * 200
    with pytest.raises(TemplateBudgetExceeded) as exc_info:
        render(source, {"tree": tree}, html=False)
    assert exc_info.value.message == (
        "The template took too long to render: more than 10000 steps (loop iterations, calls and filters)."
    )


def test_steps_within_the_budget_render(small_budget):
    assert render("{% for i in range(9000) %}{% endfor %}done", {}, html=False) == "done"


def test_the_budget_is_per_render(small_budget):
    for _ in range(3):
        assert render("{% for i in range(9000) %}{% endfor %}ok", {}, html=False) == "ok"


class FakeClock:
    """The render thread's CPU clock, advancing by `tick` seconds at each read."""

    def __init__(self, tick: float):
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_a_render_past_its_cpu_time_took_too_long(monkeypatch, settings):
    settings.TEMPLATE_RENDER_BUDGET_SECONDS = 0.5
    monkeypatch.setattr(template_limits, "_clock", FakeClock(tick=0.2))
    with pytest.raises(TemplateBudgetExceeded) as exc_info:
        render("{% for i in range(100000) %}{% endfor %}", {}, html=False)
    assert exc_info.value.message == "The template took too long to render: more than 0.5 s of CPU time."


def test_a_render_within_its_cpu_time_renders(monkeypatch):
    monkeypatch.setattr(template_limits, "_clock", FakeClock(tick=0.0))
    assert render("{% for i in range(50000) %}{% endfor %}done", {}, html=False) == "done"


def test_many_acceptable_operations_together_exhaust_the_budget_of_characters():
    source = "{{ range(100000)|map('center', 4000000)|list|length }}"
    tracemalloc.start()
    try:
        with pytest.raises(TemplateBudgetExceeded, match="builds more than 20000000 characters in all"):
            render(source, {}, html=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30_000_000  # the budget and one operation more, not 100,000 x 4 MB


def test_a_set_block_that_builds_too_much_exhausts_the_budget_of_characters():
    source = "{% set s %}{% for i in range(100000) %}{{ 'a' * 100000 }}{% endfor %}{% endset %}{{ s|length }}"
    with pytest.raises(TemplateBudgetExceeded, match="builds more than 20000000 characters in all"):
        render(source, {}, html=False)


# --- legitimate templates ----------------------------------------------------------------------------------

LEGITIMATE = [
    ("{% for tag in attributes.tags %}{{ loop.index }}. {{ tag|title }}\n{% endfor %}", "1. Vip\n2. Early Bird\n"),
    ("{{ '%.2f'|format(price) }} {{ '%s-%05d' % ('A', 42) }} {{ '%(n)s!' % {'n': first_name} }}", "19.99 A-00042 Ana!"),
    ("{{ '{:>8}|{:.3f}|{:,}'.format(first_name, price, 1234567) }}", "     Ana|19.990|1,234,567"),
    ("{{ first_name|center(9) }}|{{ first_name.ljust(5, '.') }}|{{ '7'.zfill(3) }}", "   Ana   |Ana..|007"),
    ("{{ 'a\nb'|indent(2, true) }}|{{ 'one two three'|wordwrap(7) }}", "  a\n  b|one two\nthree"),
    ("{{ attributes.tags|join(', ') }}|{{ ' / '.join(attributes.tags) }}", "vip, early bird|vip / early bird"),
    ("{{ 'Hi NAME'|replace('NAME', first_name) }} {{ 'long text here'|truncate(9) }}", "Hi Ana long text here"),
    ("{{ first_name ~ ' ' ~ 42 }} {{ 'x' * 3 }} {{ 2 ** 10 }} {{ [1] + [2] }}", "Ana 42 xxx 1024 [1, 2]"),
    ("{{ attributes|dictsort|first|join('=') }} {{ attributes.tags|length }}", "plan=pro 2"),
    ("{{ price|round(1) }} {{ [1, 2.5]|sum }} {{ range(5)|batch(2, 0)|list }}", "20.0 3.5 [[0, 1], [2, 3], [4, 0]]"),
    (
        "{% macro row(x) %}<{{ x }}>{% endmacro %}{% for t in attributes.tags %}{{ row(t) }}{% endfor %}",
        "<vip><early bird>",
    ),
    ("{% set greeting %}Hello {{ first_name }}{% endset %}{{ greeting|upper }}", "HELLO ANA"),
    ("{{ {'plan': attributes.plan}|tojson }}", '{"plan": "pro"}'),
]


@pytest.mark.parametrize(("source", "expected"), LEGITIMATE, ids=[source[:50] for source, _ in LEGITIMATE])
def test_legitimate_template_still_renders(source, expected):
    context = {"first_name": "Ana", "price": 19.99, "attributes": {"plan": "pro", "tags": ["vip", "early bird"]}}
    assert render(source, context, html=False) == expected


def test_recursive_loop_over_a_tree_still_renders():
    tree = [{"n": 1, "children": [{"n": 2, "children": [{"n": 3, "children": []}]}]}]
    source = "{% for x in tree recursive %}{{ x.n }}{% if x.children %}({{ loop(x.children) }}){% endif %}{% endfor %}"
    assert render(source, {"tree": tree}, html=False) == "1(2(3))"


def test_a_large_but_acceptable_value_still_renders():
    items = [{"name": f"product {i}", "price": i} for i in range(2000)]
    source = "{% for item in items %}{{ item.name|upper }}{% endfor %}{{ items|tojson|length > 0 }}"
    assert render(source, {"items": items}, html=True).endswith("PRODUCT 1999True")

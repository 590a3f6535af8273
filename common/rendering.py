"""Personalisation of untrusted templates (docs/architecture.md): Jinja2 in a sandbox, with contact fields and
substitution data only.

Security model, in two layers:

1. At save time `validate_template` rejects what no legitimate email template needs: private names
   (`{{ ''.__class__ }}`, `{{ self._TemplateReference__context }}`, `x['__globals__']`,
   `x|attr('__init__')`), `{% include %}`/`{% extends %}`/`{% import %}` (there is nothing to load), and
   loops over literal ranges that would run more steps than a render may take
   (`{% for i in range(100000) %}{% for j in range(100000) %}`). The author gets a 400 naming the field and
   line.
2. At render time the sandbox still stands on its own, for templates stored before a rule existed or
   names built at run time (`x|attr('_' ~ '_class__')`): an unsafe attribute is undefined and renders
   as empty text, and a blocked call or format string (SecurityError) renders the whole field as empty
   text instead of raising, so a hostile template yields nothing rather than internals.

Resource limits (docs/decisions/018) are the other half of the sandbox, in common.template_limits: no
operation may build more than a rendered field may hold (`'{:>9999999999}'.format(1)`, `'a'.center(10**9)`,
`replace` chains, `'x' * 10**10`, `9 ** 99 ** 99`, ...), and each field's render has a budget of steps, CPU
time and characters built. Exceeding one raises TemplateRenderError, like any other run-time failure
(`{{ 1 / 0 }}`, adding a number to text): that is a bug in the template the author must see (in a
preview, or as the reason a delivery failed), not something to paper over with a blank message. Only
escapes render empty: they must not tell the author anything; a limit tells nothing but the limit.

Undefined names render as empty text (and chain: `{{ company.address.city }}` is empty when `company`
is missing), as ESPs do for a merge tag a contact has no value for.
"""

import logging
from functools import lru_cache
from typing import Any

from django.conf import settings
from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import MAX_RANGE

from common import errors, template_limits
from common.template_limits import (  # noqa: F401 - part of this module's interface
    MAX_OUTPUT_CHARS,
    MAX_POWER_BITS,
    MAX_REPEAT_LENGTH,
    TemplateBudgetExceeded,
    TemplateRenderError,
)

logger = logging.getLogger(__name__)

COMPILED_CACHE_SIZE = 512
DEFAULT_BUDGET_SECONDS = 0.5
DEFAULT_MAX_STEPS = 1_000_000


class _Undefined(ChainableUndefined):
    """Empty for anything missing, including a call of it (`{{ missing() }}`): a merge tag without a
    value must not fail a send."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> "_Undefined":
        return self


def _environment(*, autoescape: bool) -> template_limits.LimitedEnvironment:
    env = template_limits.LimitedEnvironment(autoescape=autoescape, undefined=_Undefined, keep_trailing_newline=True)
    # Sending mail needs none of these; fewer globals, fewer surprises.
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    return env


_HTML_ENV = _environment(autoescape=True)
_TEXT_ENV = _environment(autoescape=False)

_LOADING_NODES = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


@lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compile(source: str, html: bool):
    # A campaign renders one template per recipient: compile once, render thousands of times.
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def _max_steps() -> int:
    return int(getattr(settings, "TEMPLATE_RENDER_MAX_STEPS", DEFAULT_MAX_STEPS))


def validate_template(source: str, *, field: str) -> None:
    """Raise ValidationError({field: ["Template syntax error on line N: ..."]}) if `source` is not a
    template we are willing to store. See the module docstring for what is refused and why."""
    try:
        _compile(source, field == "html")
        tree = _TEXT_ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise errors.ValidationError.for_field(
            field, f"Template syntax error on line {exc.lineno}: {exc.message}"
        ) from None
    problem = _first_forbidden_node(tree) or _first_runaway_loop([tree], max_steps=_max_steps())
    if problem is not None:
        lineno, message = problem
        raise errors.ValidationError.for_field(field, f"Template error on line {lineno}: {message}")


def _first_forbidden_node(tree: nodes.Template) -> tuple[int, str] | None:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, *_LOADING_NODES)):
        if isinstance(node, _LOADING_NODES):
            tag = type(node).__name__.lower().replace("fromimport", "from ... import")
            return node.lineno, f"{{% {tag} %}} is not supported: a template must be self-contained."
        name = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            name = node.args[0].value if isinstance(node.args[0], nodes.Const) else None
        if isinstance(name, str) and name.startswith("_"):
            return node.lineno, (
                f"'{name}' is a private attribute; templates may use contact fields and substitution data only."
            )
    return None


def _literal_range_length(node: nodes.Expr) -> int | None:
    """len(range(...)) when `node` is a call of range() with literal integers, else None (unknown)."""
    if not (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range"):
        return None
    if node.kwargs or node.dyn_args or node.dyn_kwargs or not all(isinstance(a, nodes.Const) for a in node.args):
        return None
    values = [arg.value for arg in node.args]
    if not all(type(value) is int for value in values):
        return None
    try:
        return len(range(*values))
    except (TypeError, ValueError):
        return None


def _first_runaway_loop(found: list[nodes.Node], *, max_steps: int, outer: int = 1) -> tuple[int, str] | None:
    """The first loop over literal ranges (nested in others) that would run more than `max_steps`
    iterations, or a literal range the sandbox refuses anyway. Loops over data are not judged here (their
    size is known only at render time, where the budget stops them)."""
    for node in found:
        if not isinstance(node, nodes.For):
            problem = _first_runaway_loop(list(node.iter_child_nodes()), max_steps=max_steps, outer=outer)
        else:
            length = _literal_range_length(node.iter)
            if length is not None and length > MAX_RANGE:
                return node.lineno, f"range() may produce at most {MAX_RANGE} items; this one has {length}."
            runs = outer * (1 if length is None else length)
            if runs > max_steps:
                return node.lineno, (
                    f"these loops would run {runs} times; a template may take at most {max_steps} steps."
                )
            problem = _first_runaway_loop(node.body, max_steps=max_steps, outer=runs) or _first_runaway_loop(
                [node.iter, *node.else_, *([node.test] if node.test else [])], max_steps=max_steps, outer=outer
            )
        if problem is not None:
            return problem
    return None


def render(source: str, context: dict[str, Any], *, html: bool) -> str:
    """Render `source` with `context`; HTML-escape values when `html`. Raises TemplateRenderError for a
    syntax error, a run-time error of the template or a resource limit (TemplateBudgetExceeded when the
    render ran out of steps, time or characters); a sandbox violation renders as "" (see above)."""
    if not source:
        return ""
    try:
        template = _compile(source, html)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"Template syntax error on line {exc.lineno}: {exc.message}") from None
    size = 0
    parts: list[str] = []
    seconds = float(getattr(settings, "TEMPLATE_RENDER_BUDGET_SECONDS", DEFAULT_BUDGET_SECONDS))
    try:
        with template_limits.Budget(seconds=seconds, max_steps=_max_steps()):
            for chunk in template.generate(context):
                size += len(chunk)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateRenderError(f"The rendered template is larger than {MAX_OUTPUT_CHARS} characters.")
                parts.append(chunk)
    except SecurityError as exc:
        logger.warning("Template blocked by the sandbox, rendered as empty: %s", exc)
        return ""
    except TemplateRenderError:
        raise
    except Exception as exc:  # noqa: BLE001 - any error of an untrusted template is the template's, not ours
        raise TemplateRenderError(f"Template error: {type(exc).__name__}: {exc}") from None
    return "".join(parts)


def contact_context(contact, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The variables a template sees for one contact.

    Precedence, lowest first: the contact's attributes, then the send's substitution data (`extra`),
    then the built-in fields (email, first_name, last_name, timezone, attributes), which nothing
    overrides: an attribute called "email" must not change what `{{ email }}` says. Such an attribute
    stays reachable as `{{ attributes.email }}`.

    `timezone` is the contact's own or else the workspace's; load contacts with
    select_related("workspace") when rendering many.
    """
    attributes = contact.attributes if isinstance(contact.attributes, dict) else {}
    context: dict[str, Any] = {str(key): value for key, value in attributes.items()}
    context.update(extra or {})
    context.update(
        email=contact.email,
        first_name=contact.first_name,
        last_name=contact.last_name,
        timezone=contact.timezone or contact.workspace.timezone,
        attributes=attributes,
    )
    return context

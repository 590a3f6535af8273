"""Personalisation of untrusted templates (docs/architecture.md): Jinja2 in a sandbox, with contact fields and
substitution data only.

Security model, in two layers:

1. At save time `validate_template` rejects what no legitimate email template needs: private names
   (`{{ ''.__class__ }}`, `{{ self._TemplateReference__context }}`, `x['__globals__']`,
   `x|attr('__init__')`), and `{% include %}`/`{% extends %}`/`{% import %}` (there is nothing to load).
   The author gets a 400 naming the field and line.
2. At render time the sandbox still stands on its own, for templates stored before a rule existed or
   names built at run time (`x|attr('_' ~ '_class__')`): an unsafe attribute is undefined and renders
   as empty text, and a blocked call or format string (SecurityError) renders the whole field as empty
   text instead of raising, so a hostile template yields nothing rather than internals. Output size
   and what `*` and `**` may build are capped, so the classic one-liners (`{{ 'x' * 10**10 }}`) cannot
   exhaust a worker's memory. This is not a complete resource limit (a template can still loop for a
   while); the Celery task time limit bounds the rest.

Other run-time failures (`{{ 1 / 0 }}`, adding a number to text) raise TemplateRenderError: that is a
bug in the template the author must see (in a preview, or as the reason a delivery failed), not
something to paper over with a blank message.

Undefined names render as empty text (and chain: `{{ company.address.city }}` is empty when `company`
is missing), as ESPs do for a merge tag a contact has no value for.
"""

import logging
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from common import errors

logger = logging.getLogger(__name__)

# A rendered field larger than this is refused (an email over a few MB is undeliverable anyway).
MAX_OUTPUT_CHARS = 5_000_000
# Longest string or list `*` may build, and the largest number `**` may build: `{{ 'x' * 10**10 }}` or
# `{{ 9 ** 99 ** 99 }}` would otherwise take the worker's memory or CPU.
MAX_REPEAT_LENGTH = 100_000
MAX_POWER_BITS = 4096
COMPILED_CACHE_SIZE = 512


class TemplateRenderError(errors.ValidationError):
    default_message = "The template could not be rendered."


class _Undefined(ChainableUndefined):
    """Empty for anything missing, including a call of it (`{{ missing() }}`): a merge tag without a
    value must not fail a send."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> "_Undefined":
        return self


class _Environment(ImmutableSandboxedEnvironment):
    # Immutable: templates cannot mutate the context's lists and dicts (`attributes.update(...)`).
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        powers = operator == "**" and isinstance(left, int) and isinstance(right, int)
        if powers and right > 0 and left.bit_length() * right > MAX_POWER_BITS:
            raise SecurityError(f"The power would be larger than {MAX_POWER_BITS} bits.")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                repeats = isinstance(seq, (str, list, tuple)) and isinstance(times, int)
                if repeats and len(seq) * times > MAX_REPEAT_LENGTH:
                    raise SecurityError(f"Repetition would build more than {MAX_REPEAT_LENGTH} items.")
        return super().call_binop(context, operator, left, right)


def _environment(*, autoescape: bool) -> _Environment:
    env = _Environment(autoescape=autoescape, undefined=_Undefined, keep_trailing_newline=True)
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
    problem = _first_forbidden_node(tree)
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


def render(source: str, context: dict[str, Any], *, html: bool) -> str:
    """Render `source` with `context`; HTML-escape values when `html`. Raises TemplateRenderError for a
    syntax error or a run-time error of the template; a sandbox violation renders as "" (see above)."""
    if not source:
        return ""
    try:
        template = _compile(source, html)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"Template syntax error on line {exc.lineno}: {exc.message}") from None
    size = 0
    parts: list[str] = []
    try:
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

"""Resource limits of the template sandbox (docs/decisions/018): a template may not build more than a rendered
field may hold, nor run longer than its budget. common.rendering renders with `LimitedEnvironment`.

Jinja's sandbox stops escapes, not work: `{{ '{:>9999999999}'.format(1) }}`, `{{ 'a'.center(2000000000) }}`,
a chain of `|replace('a', 'aaaaaaaaaa')`, `{{ 5|round(-10**7) }}` or two nested `range(100000)` loops each
take a worker's memory or CPU, and most of them inside one C call that nothing can interrupt. So:

1. **Size, before the operation.** Every operation that can build much more than it is given computes what
   it would build from its arguments first, and is refused (TemplateRenderError) when that is more than
   MAX_OUTPUT_CHARS (no single value larger than the whole field may hold): the str methods `center`,
   `ljust`, `rjust`, `zfill`, `expandtabs`, `replace`, `join`, `translate`, `format`/`format_map` (each
   field's width and precision, then the running size), `%` formatting and the `format` filter (each
   conversion measured on its own), `+` and `~`, the filters `center`, `indent`, `wordwrap`, `replace`,
   `join`, `format`, `urlize`, `tojson`, `pprint`, `batch` (its filler), `round` (its precision) and `sum`
   (numbers only). `*` and `**` keep their own caps (MAX_REPEAT_LENGTH, MAX_POWER_BITS). Bytes
   (`encode`, `to_bytes`) are refused: mail templates work with text.
2. **Size of what becomes text.** A list may hold one long string a thousand times at no cost, but printing
   it, joining it or passing it to a filter writes the string a thousand times. So every list or mapping
   printed, concatenated, formatted, joined or passed to a filter that writes text is measured (`_size`,
   each reference counted) and refused above MAX_OUTPUT_CHARS.
3. **The budget of one render** (`Budget`, one per field): steps (each loop iteration, call, filter, item
   a filter yields, format field) up to `max_steps`; the render thread's CPU time, read every
   CLOCK_EVERY_STEPS steps, up to `seconds`; characters and items built by all operations together up to
   MAX_BUILT_CHARS (a loop of individually acceptable operations still cannot fill memory). Exceeding one
   raises TemplateBudgetExceeded, "The template took too long to render".

Jinja hooks used (Jinja 3.1, "Sandbox" docs): `call()` for every call a template makes, `intercepted_binops`
and `call_binop()`, `wrap_str_format()` for `str.format`, `concat` for the buffers of blocks, macros and
`{% set %}` blocks, `finalize` for every printed value, the filters table, and `code_generator_class` for
what has no hook: `~` and the iteration of `{% for %}`. Constant folding at compile time calls the same
filters, so a literal `{{ 'a'|center(2000000000) }}` is refused there too (Jinja then leaves it to run time).
"""

import functools
import itertools
import operator
import re
import time
import types
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import filters as jinja_filters
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, pass_eval_context
from markupsafe import EscapeFormatter, Markup, escape, soft_str

from common import errors

# A rendered field larger than this is refused (an email over a few MB is undeliverable anyway), and so is
# any single string an operation would build.
MAX_OUTPUT_CHARS = 5_000_000
# Longest string or list `*` may build (and list `+`), and the largest number `**` (or `*` of two integers)
# may build: `{{ 'x' * 10**10 }}` or `{{ 9 ** 99 ** 99 }}` would otherwise take the worker's memory or CPU.
MAX_REPEAT_LENGTH = 100_000
MAX_POWER_BITS = 4096
# What all the operations of one render may build together (characters of strings, items of lists): a few
# fields' worth, so assembling a page from pieces never hits it, but a loop of large operations stops long
# before memory does.
MAX_BUILT_CHARS = 4 * MAX_OUTPUT_CHARS
# `round` computes 10**precision in one C call; a float has nothing beyond 10**±330 to round.
MAX_ROUND_PRECISION = 400
# The CPU clock costs ~0.5 µs a read, a step ~0.3 µs: read it every this many steps, and after any large build.
CLOCK_EVERY_STEPS = 16
LARGE_BUILD = 65_536

# What the budget reads; the render thread's CPU time, so a busy machine does not fail a template. Tests
# replace it with a fake clock.
_clock = time.thread_time


class TemplateRenderError(errors.ValidationError):
    default_message = "The template could not be rendered."


class TemplateBudgetExceeded(TemplateRenderError):
    """The render ran out of steps, CPU time or characters: the same template costs as much again for the
    next recipient (delivery.services stops rendering it for the rest of the batch)."""

    default_message = "The template took too long to render."


# --- the budget of one render ----------------------------------------------------------------------------


class Budget:
    """The budget of the render inside `with Budget(...)`. Outside one (compile-time constant folding), only
    the size limits apply."""

    __slots__ = ("seconds", "max_steps", "steps", "built", "deadline", "sizes", "_token")

    def __init__(self, *, seconds: float, max_steps: int):
        self.seconds = seconds
        self.max_steps = max_steps
        self.steps = 0
        self.built = 0
        self.deadline = 0.0
        self.sizes: dict[int, tuple[Any, int]] = {}  # see _size

    def __enter__(self) -> "Budget":
        self.deadline = _clock() + self.seconds
        self._token = _BUDGET.set(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _BUDGET.reset(self._token)
        self.sizes.clear()

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise TemplateBudgetExceeded(
                f"The template took too long to render: more than {self.max_steps} steps "
                "(loop iterations, calls and filters)."
            )
        if self.steps % CLOCK_EVERY_STEPS == 0:
            self.check_clock()

    def step_many(self, count: int) -> None:
        """`count` steps at once (walking a large value is work too)."""
        if count:
            self.steps += count - 1
            self.step()
            if count >= CLOCK_EVERY_STEPS:
                self.check_clock()

    def check_clock(self) -> None:
        if _clock() > self.deadline:
            raise TemplateBudgetExceeded(
                f"The template took too long to render: more than {self.seconds:g} s of CPU time."
            )

    def charge(self, amount: int) -> None:
        self.built += amount
        if self.built > MAX_BUILT_CHARS:
            raise TemplateBudgetExceeded(
                f"The template took too long to render: it builds more than {MAX_BUILT_CHARS} characters in all."
            )
        if amount > LARGE_BUILD:
            self.check_clock()

    def iterate(self, iterable: Iterable) -> Iterator:
        for item in iterable:
            self.step()
            yield item


_BUDGET: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


def _step() -> None:
    current = _BUDGET.get()
    if current is not None:
        current.step()


def _charge(amount: int) -> None:
    current = _BUDGET.get()
    if current is not None and amount:
        current.charge(amount)


def _guard_iter(iterable: Any) -> Any:
    current = _BUDGET.get()
    return iterable if current is None else current.iterate(iterable)


# --- measuring --------------------------------------------------------------------------------------------

_ITEMS_VIEW = type({}.items())
_CONTAINERS = (list, tuple, dict, set, frozenset, Namespace, type({}.keys()), type({}.values()), _ITEMS_VIEW)
_BUILT = (str, list, tuple, dict, set, frozenset)


def _leaf_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 3 + 2  # decimal digits, a little over
    return 24  # a float, None, a bool, an undefined name, a macro, ...


def _children(item: Any) -> tuple[int, Iterable]:
    """(what `item` itself writes, its children) for a container."""
    if isinstance(item, dict):
        return 2 + 2 * len(item), itertools.chain(item.keys(), item.values())
    if isinstance(item, _ITEMS_VIEW):  # its (key, value) tuples are made on the fly: measure their parts
        return 2 + 4 * len(item), itertools.chain.from_iterable(item)
    if isinstance(item, Namespace):
        return 12, (object.__getattribute__(item, "_Namespace__attrs"),)
    return 2 + len(item), item


class _Walk:
    """One measurement: sizes by id (containers are alive while their root is), the render's cache."""

    __slots__ = ("memo", "limit", "cache", "items")

    def __init__(self, limit: int, cache: dict | None):
        self.memo: dict[int, tuple[int, bool]] = {}
        self.limit = limit
        self.cache = cache
        self.items = 0

    def measure(self, item: Any) -> tuple[int, bool]:
        """(size, whether a namespace is inside)."""
        key = id(item)
        known = self.memo.get(key)
        if known is not None:  # shared; or, while still in progress, a cycle: too large
            return known
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None and cached[0] is item:
                return cached[1], False
        self.memo[key] = (self.limit + 1, True)
        total, children = _children(item)
        mutable = isinstance(item, Namespace)
        for child in children:
            self.items += 1
            if isinstance(child, _CONTAINERS):
                size, inner = self.measure(child)
                total += size
                mutable = mutable or inner
            else:
                total += _leaf_size(child)
            if total > self.limit:
                break
        self.memo[key] = (total, mutable)
        if self.cache is not None and not mutable:
            self.cache[key] = (item, total)  # the reference keeps the id from being reused
        return total, mutable


def _size(value: Any, limit: int = MAX_OUTPUT_CHARS) -> int:
    """About what writing `value` as text costs, in characters: a string's length; for lists, mappings and
    namespaces, their items through every level of nesting, each time they are referenced (a list holding
    one long string 1,000 times prints it 1,000 times). Each container is walked once however often it is
    referenced, and, unless a namespace is inside (nothing else can change during a render), once per
    render. More than `limit`, or nested too deeply to walk, answers limit + 1."""
    if not isinstance(value, _CONTAINERS):
        return _leaf_size(value)
    current = _BUDGET.get()
    walk = _Walk(limit, None if current is None else current.sizes)
    try:
        size = walk.measure(value)[0]
    except RecursionError:
        size = limit + 1
    if current is not None:
        current.step_many(walk.items)
    return min(size, limit + 1)


def _depth(value: Any, memo: dict[int, int] | None = None) -> int:
    """How deeply lists and mappings nest in `value` (pretty-printers indent by it). Call after `_size`."""
    memo = {} if memo is None else memo
    known = memo.get(id(value))
    if known is not None:
        return known
    memo[id(value)] = 0
    _, children = _children(value)
    deepest = 1 + max((_depth(child, memo) for child in children if isinstance(child, _CONTAINERS)), default=0)
    memo[id(value)] = deepest
    return deepest


def _check_text(value: Any, what: str) -> None:
    """Refuse a container that would write more than MAX_OUTPUT_CHARS as text (see the module docstring)."""
    if isinstance(value, _CONTAINERS) and _size(value) > MAX_OUTPUT_CHARS:
        raise TemplateRenderError(
            f"{what} was given a list or mapping of more than {MAX_OUTPUT_CHARS} characters "
            "(counting each item every time it appears)."
        )


def _check_args(what: str, args: tuple, kwargs: dict) -> None:
    for value in itertools.chain(args, kwargs.values()) if kwargs else args:
        if isinstance(value, _CONTAINERS):
            _check_text(value, what)


def _refuse_beyond(size: int, what: str) -> None:
    """Refuse an operation that would build more than MAX_OUTPUT_CHARS (`size` is an upper bound of what
    it builds; what it did build is charged to the budget afterwards)."""
    if size > MAX_OUTPUT_CHARS:
        raise TemplateRenderError(
            f"{what} would build {size} characters; a template may build at most {MAX_OUTPUT_CHARS} at once."
        )


def _refuse_beyond_repeat(length: int, what: str) -> None:
    if length > MAX_REPEAT_LENGTH:
        raise TemplateRenderError(f"{what} would build more than {MAX_REPEAT_LENGTH} items.")


def _built_size(result: Any) -> int:
    return len(result) if isinstance(result, _BUILT) else 0


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else len(soft_str(value))


def _width(value: Any) -> int:
    return max(operator.index(value), 0)


def _replaced_size(text: str, old: str, new: str, count: Any = -1) -> int:
    """Length of text.replace(old, new, count), without building it."""
    occurrences = len(text) + 1 if not old else text.count(old)
    if count is not None and operator.index(count) >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * max(len(new) - len(old), 0)


def _joined_size(separator: str, items: list, escapes: bool = False) -> int:
    # Markup.join and the join filter under autoescaping escape plain items: up to 5 characters for one.
    factor = 5 if escapes else 1
    total = max(len(items) - 1, 0) * len(separator)
    for item in items:
        _check_text(item, "join")
        total += _text_len(item) * (1 if hasattr(item, "__html__") else factor)
        if total > MAX_OUTPUT_CHARS:
            break
    return total


# printf-style conversions (https://docs.python.org/3/library/stdtypes.html#printf-style-string-formatting).
# A mapping key with parentheses inside is not matched; the '%' it leaves over is refused below.
_PRINTF = re.compile(
    r"%%|%(?:\((?P<key>[^()]*)\))?(?P<flags>[-#0 +]*)(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d*))?[hlL]?"
    r"(?P<conversion>[diouxXeEfFgGcrsa])"
)


def _printf_size(fmt: str, values: Any) -> int:
    """An upper bound of len(fmt % values): a cheap one from the parsed format when it can be had (the
    format filter on a price should not cost a second formatting), else the exact measure."""
    bound = _printf_bound(fmt, values)
    return _printf_measure(fmt, values) if bound is None or bound > MAX_OUTPUT_CHARS else bound


@functools.lru_cache(maxsize=512)
def _printf_parse(fmt: str) -> tuple | None:
    """(key, width, precision, conversion) of each conversion of a short format; None for '*' or a '%'
    that is not a conversion (the exact measure deals with those)."""
    found = []
    end = 0
    for match in _PRINTF.finditer(fmt):
        if "%" in fmt[end : match.start()] or "*" in match[0]:
            return None
        end = match.end()
        if match[0] != "%%":
            found.append((match["key"], int(match["width"] or 0), int(match["precision"] or 0), match["conversion"]))
    return None if "%" in fmt[end:] else tuple(found)


def _printf_bound(fmt: str, values: Any) -> int | None:
    conversions = _printf_parse(fmt) if len(fmt) <= 1000 else None  # the cache keeps its formats
    if conversions is None:
        return None
    positional = values if isinstance(values, tuple) else (values,)
    mapping = values if isinstance(values, Mapping) else None
    escapes = 5 if isinstance(fmt, Markup) else 1
    total = len(fmt)
    index = 0
    for key, width, precision, conversion in conversions:
        if key is None:
            if index >= len(positional):
                return None
            value = positional[index]
            index += 1
        elif mapping is None or key not in mapping:
            return None
        else:
            value = mapping[key]
        if isinstance(value, str):
            content = len(value)
        elif isinstance(value, bool) or value is None:
            content = 5
        elif isinstance(value, int):
            content = value.bit_length() // 3 + 3  # decimal or octal digits
        elif isinstance(value, float):
            content = 330  # %f of 1e308
        else:
            return None
        if conversion in "ra":
            content = 10 * content + 2  # repr escapes, up to \U0001f600
        total += width + precision + 10 + content * escapes  # 10: sign, point, exponent, 0x
    return total


def _printf_measure(fmt: str, values: Any) -> int:
    """Length of `fmt % values`, measured one conversion at a time (each bounded before it is built), so
    neither a width nor a mapping key used many times can build more than MAX_OUTPUT_CHARS."""
    positional = list(values) if isinstance(values, tuple) else [values]
    mapping = values if isinstance(values, Mapping) else None
    kind = type(fmt)  # Markup escapes what it formats: measure with the same type
    taken = 0

    def take() -> Any:
        nonlocal taken
        if taken >= len(positional):
            raise TypeError("not enough arguments for format string")
        taken += 1
        return positional[taken - 1]

    size = 0
    end = 0
    for match in _PRINTF.finditer(fmt):
        if "%" in fmt[end : match.start()]:
            raise ValueError(f"unsupported format at index {fmt.index('%', end)}")
        size += match.start() - end
        end = match.end()
        if match[0] == "%%":
            size += 1
            continue
        _step()
        width = match["width"]
        width = abs(operator.index(take())) if width == "*" else int(width or 0)  # '-' in '*' left-justifies
        precision = match["precision"]
        if precision == "*":
            precision = _width(take())
        elif precision is not None:
            precision = int(precision or 0)
        if max(width, precision or 0) > MAX_OUTPUT_CHARS:
            raise TemplateRenderError(f"The format '{match[0]}' asks for more than {MAX_OUTPUT_CHARS} characters.")
        key = match["key"]
        if key is not None and mapping is None:
            raise TypeError("format requires a mapping")
        value = mapping[key] if key is not None else take()
        _check_text(value, "% formatting")
        spec = f"%{match['flags']}{width or ''}{'' if precision is None else f'.{precision}'}{match['conversion']}"
        size += len(kind(spec) % (value,))
        if size > MAX_OUTPUT_CHARS:
            return size
    if "%" in fmt[end:]:
        raise ValueError(f"unsupported format at index {fmt.index('%', end)}")
    return size + len(fmt) - end


# str.format's standard format spec (https://docs.python.org/3/library/string.html#formatspec): the numbers
# in it are a fill digit, the width and the precision.
_SPEC_NUMBERS = re.compile(r"\d+")


class _BoundedFormatter(SandboxedFormatter):
    """str.format in the sandbox, refusing a width or precision above MAX_OUTPUT_CHARS and stopping once
    the result would pass it."""

    def vformat(self, format_string, args, kwargs):
        self._built = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value, conversion):
        _check_text(value, "format")
        return super().convert_field(value, conversion)

    def format_field(self, value, format_spec):
        _step()
        _check_text(value, "format")
        if any(int(number) > MAX_OUTPUT_CHARS for number in _SPEC_NUMBERS.findall(format_spec)):
            raise TemplateRenderError(
                f"The format '{{:{format_spec}}}' asks for more than {MAX_OUTPUT_CHARS} characters."
            )
        text = super().format_field(value, format_spec)
        self._built += len(text)
        if self._built > MAX_OUTPUT_CHARS:
            raise TemplateRenderError(f"format would build more than {MAX_OUTPUT_CHARS} characters.")
        return text


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


# --- str methods ------------------------------------------------------------------------------------------


def _str_replace_size(s: str, old: Any, new: Any, count: Any = -1) -> int:
    if isinstance(s, Markup):  # Markup's methods escape their plain-text arguments
        old, new = escape(old), escape(new)
    return _replaced_size(s, old, new, count)


def _str_translate_size(s: str, table: Any) -> int:
    _check_text(table, "translate")
    values = table.values() if isinstance(table, Mapping) else table
    longest = max((len(value) for value in values if isinstance(value, str)), default=1)
    return len(s) * max(longest, 1)


_STR_METHOD_SIZES = {
    "center": lambda s, width, *fill: max(len(s), _width(width)),
    "ljust": lambda s, width, *fill: max(len(s), _width(width)),
    "rjust": lambda s, width, *fill: max(len(s), _width(width)),
    "zfill": lambda s, width: max(len(s), _width(width)),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count("\t") * _width(tabsize),
    "replace": _str_replace_size,
    "join": lambda s, items: _joined_size(s, items, escapes=isinstance(s, Markup)),
    "translate": _str_translate_size,
}
# Bytes would need every check again, for nothing a mail template needs.
_REFUSED_METHODS = {"encode": str, "to_bytes": int}


# --- filters ----------------------------------------------------------------------------------------------


def _replace_filter_size(eval_ctx, s, old, new, count=None) -> int:
    # The conversions of jinja2.filters.do_replace, then the length of its result.
    if not eval_ctx.autoescape:
        s, old, new = str(s), str(old), str(new)
    else:
        if hasattr(old, "__html__") or hasattr(new, "__html__") and not hasattr(s, "__html__"):
            s = escape(s)
        else:
            s = soft_str(s)
        old, new = soft_str(old), soft_str(new)
        if isinstance(s, Markup):
            old, new = escape(old), escape(new)
    return _replaced_size(s, old, new, -1 if count is None else count)


def _indent_size(s, width=4, first=False, blank=False) -> int:
    indentation = len(width) if isinstance(width, str) else _width(width)
    text = soft_str(s)
    return len(text) + (text.count("\n") + 2) * indentation


def _wordwrap_size(environment, s, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True) -> int:
    # At most one line break per character.
    separator = environment.newline_sequence if wrapstring is None else wrapstring
    return len(s) + (len(s) + 1) * len(separator)


def _urlize_size(eval_ctx, value, trim_url_limit=None, nofollow=False, target=None, rel=None, extra_schemes=None):
    # jinja2.utils.urlize: the text escaped (up to 5x), each URL twice, and rel/target on every link.
    text = soft_str(value)
    attributes = len(escape(target or "")) + len(escape(rel or "")) + 100
    return 10 * len(text) + (len(text.split()) + 1) * attributes


def _tojson_size(eval_ctx, value, indent=None) -> int:
    # JSON escapes <, >, & and ' as \\u003c: 6 characters for one; indentation repeats per nesting level.
    size = _size(value)
    if indent is None or size > MAX_OUTPUT_CHARS:
        return 6 * size
    indentation = len(indent) if isinstance(indent, str) else _width(indent)
    return (6 + indentation * _depth(value)) * size


def _pprint_size(value) -> int:
    size = _size(value)
    return size if size > MAX_OUTPUT_CHARS else (6 + _depth(value)) * size


def _batch_size(value, linecount, fill_with=None) -> int:
    if fill_with is None:
        return 0
    if _size(fill_with) * _width(linecount) > MAX_REPEAT_LENGTH:
        raise TemplateRenderError(f"batch would repeat its filler into more than {MAX_REPEAT_LENGTH} items.")
    return _width(linecount)


def _round_size(value, precision=0, method="common") -> int:
    if abs(operator.index(precision)) > MAX_ROUND_PRECISION:
        raise TemplateRenderError(f"round takes a precision between -{MAX_ROUND_PRECISION} and {MAX_ROUND_PRECISION}.")
    return 0


def _sum_size(environment, iterable, attribute=None, start=0) -> int:
    # sum() of lists or strings copies everything so far at each item: quadratic, in one C call.
    if isinstance(start, bool) or not isinstance(start, (int, float)):
        raise TemplateRenderError("sum adds numbers: its start must be a number.")
    return 0


_FILTER_SIZES = {
    "center": lambda value, width=80: max(_text_len(value), _width(width)),
    "indent": _indent_size,
    "wordwrap": _wordwrap_size,
    "replace": _replace_filter_size,
    "format": lambda value, *args, **kwargs: _printf_size(soft_str(value), kwargs or args),
    "urlize": _urlize_size,
    "tojson": _tojson_size,
    "pprint": _pprint_size,
    "batch": _batch_size,
    "round": _round_size,
    "sum": _sum_size,
}


@pass_eval_context
def _join_filter(eval_ctx, value, d="", attribute=None):
    """The join filter, measured first: the items are materialised (and mapped by `attribute`) once."""
    if attribute is not None:
        getter = jinja_filters.make_attrgetter(eval_ctx.environment, attribute)
        items = [getter(item) for item in value]
    else:
        items = list(value)
    _refuse_beyond(_joined_size(soft_str(d), items, escapes=eval_ctx.autoescape), "The 'join' filter")
    return jinja_filters.sync_do_join(eval_ctx, items, d)


# Filters that never write a list or mapping they are given as text (they count, pick, sort or regroup it),
# so they need not measure it (the text filters, `string`, `safe`, `tojson`, `join`, ... do).
_STRUCTURAL_FILTERS = frozenset(
    {"abs", "attr", "batch", "count", "d", "default", "dictsort", "first", "float", "groupby", "int", "items"}
    | {"last", "length", "list", "map", "max", "min", "random", "reject", "rejectattr", "reverse", "round"}
    | {"select", "selectattr", "slice", "sort", "sum", "unique"}
)


def _guard_filter(name: str, func):
    measure = _FILTER_SIZES.get(name)
    writes_text = name not in _STRUCTURAL_FILTERS
    what = f"The '{name}' filter"

    @functools.wraps(func)
    def guarded(*args, **kwargs):
        current = _BUDGET.get()
        if current is not None:
            current.step()
        if writes_text:
            _check_args(what, args, kwargs)
        if measure is not None:
            _refuse_beyond(measure(*args, **kwargs), what)
        result = func(*args, **kwargs)
        if current is not None:
            if isinstance(result, _BUILT):
                current.charge(len(result))
            elif isinstance(result, types.GeneratorType):  # map, select, slice, batch, ...: each item is a step
                result = current.iterate(result)
        return result

    return guarded


# --- the environment --------------------------------------------------------------------------------------


class _CodeGenerator(CodeGenerator):
    """Two things Jinja has no runtime hook for: the iteration of `{% for %}` and `~`. (Jinja forbids new
    node types, so the iterable of a loop is marked by identity and wrapped where it is written.)"""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._loop_iterables: set[int] = set()

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) not in self._loop_iterables:
            return super().visit(node, *args, **kwargs)
        self.write("environment.guard_iter(")
        super().visit(node, *args, **kwargs)
        self.write(")")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        self._loop_iterables.add(id(node.iter))
        super().visit_For(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # Jinja's own choice of join (jinja2.compiler.CodeGenerator.visit_Concat), measured first.
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.concat_operands({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


# What Jinja's compiled code passes to every call inside a loop or block (jinja2.runtime.Context.call drops them).
_JINJA_CALL_KWARGS = frozenset({"_loop_vars", "_block_vars"})


def _finalize(value: Any) -> Any:
    _check_text(value, "Printing a value")
    return value


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox (templates cannot mutate the context's lists and dicts:
    `attributes.update(...)`), with the limits of this module."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any):
        super().__init__(finalize=_finalize, **options)
        self.filters = {name: _guard_filter(name, func) for name, func in self.filters.items()}
        self.filters["join"] = _guard_filter("join", _join_filter)

    @staticmethod
    def guard_iter(iterable: Any) -> Any:
        return _guard_iter(iterable)

    def concat(self, parts: Iterable[str]) -> str:  # the output of blocks, macros, call and set blocks
        parts = list(parts)
        size = sum(map(len, parts))
        _refuse_beyond(size, "A block of the template")
        _charge(size)
        return "".join(parts)

    def concat_operands(self, join, operands: tuple) -> str:
        for operand in operands:
            _check_text(operand, "'~'")
        parts = [soft_str(operand) for operand in operands]
        size = sum(map(len, parts))
        _refuse_beyond(size, "'~'")
        _charge(size)
        return join(parts)

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        both_int = isinstance(left, int) and isinstance(right, int)
        if operator == "**" and both_int and right > 0 and left.bit_length() * right > MAX_POWER_BITS:
            raise TemplateRenderError(f"The power would be larger than {MAX_POWER_BITS} bits.")
        if operator == "*":
            if both_int and left.bit_length() + right.bit_length() > MAX_POWER_BITS:
                raise TemplateRenderError(f"The product would be larger than {MAX_POWER_BITS} bits.")
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                    _refuse_beyond_repeat(len(seq) * times, "Repetition")
        elif operator == "+":
            if isinstance(left, str) and isinstance(right, str):
                _refuse_beyond(len(left) + len(right), "'+'")
            elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                _refuse_beyond_repeat(len(left) + len(right), "'+'")  # as long as `*` may make a list
        elif operator == "%" and isinstance(left, str):
            _check_text(right, "% formatting")
            _refuse_beyond(_printf_size(left, right), "% formatting")
        result = super().call_binop(context, operator, left, right)
        _charge(_built_size(result))
        return result

    def wrap_str_format(self, value: Any):
        # jinja2.sandbox.SandboxedEnvironment.wrap_str_format with the bounded formatters.
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        receiver = value.__self__
        if not isinstance(receiver, str):
            return None
        formatter = (
            _BoundedEscapeFormatter(self, escape=receiver.escape)
            if isinstance(receiver, Markup)
            else _BoundedFormatter(self)
        )
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            return type(receiver)(formatter.vformat(receiver, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        # No call writes a list or mapping as text but the str methods measured here and str.format (whose
        # formatter measures each field): the arguments of the others are measured where they are printed.
        _step()
        kind = type(__obj)
        if kind is types.BuiltinMethodType or kind is types.MethodType:
            receiver, name = __obj.__self__, __obj.__name__
            refused = _REFUSED_METHODS.get(name)
            if refused is not None and isinstance(receiver, refused):
                raise TemplateRenderError(f"'{name}' makes bytes; templates work with text only.")
            measure = _STR_METHOD_SIZES.get(name) if isinstance(receiver, str) else None
            if measure is not None:
                if name == "join" and args and not isinstance(args[0], (list, tuple)):
                    args = (list(args[0]), *args[1:])
                arguments = {key: value for key, value in kwargs.items() if key not in _JINJA_CALL_KWARGS}
                _refuse_beyond(measure(receiver, *args, **arguments), f"'{name}'")
        elif isinstance(__obj, LoopContext) and args:  # loop(children) of a recursive loop
            args = (_guard_iter(args[0]), *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        _charge(_built_size(result))
        return result

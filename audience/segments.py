"""Segment rules: a small JSON grammar, validated once and compiled to a Django Q over Contact.

    {"all": [cond, ...]} / {"any": [cond, ...]}          groups, nestable up to MAX_DEPTH
    {"attribute": "plan", "op": "eq", "value": "pro"}    attributes[plan]
    {"label": "<label uuid>", "op": "has"}               label membership (has | has_not)
    {"field": "status", "op": "in", "value": [...]}      a contact column

The compiled Q runs on PostgreSQL and SQLite alike (JSONField key transforms, EXISTS subqueries), so
an audience is always resolved in SQL. Negative operators are written so that they are never NULL:
`neq`, `not_in` and `not_exists` match a contact that lacks the attribute, and a segment used as an
exclusion does not silently drop contacts on three-valued logic.
"""

import uuid
from typing import Any

from django.db.models import CharField, Exists, ExpressionWrapper, F, Func, JSONField, OuterRef, Q, Value
from django.db.models.fields.json import (
    HasKey,
    KeyTransform,
    KeyTransformExact,
    KeyTransformGt,
    KeyTransformGte,
    KeyTransformIContains,
    KeyTransformIn,
    KeyTransformLt,
    KeyTransformLte,
    compile_json_path,
)
from django.db.models.lookups import Exact

from accounts.models import Workspace
from audience.models import Contact
from common import errors

MAX_DEPTH = 5
MAX_CONDITIONS = 100
MAX_LIST_VALUES = 500
MAX_STRING_LENGTH = 1000

ATTRIBUTE_OPS = ("eq", "neq", "in", "not_in", "contains", "exists", "not_exists", "gt", "gte", "lt", "lte")
LABEL_OPS = ("has", "has_not")
FIELD_OPS = ("eq", "neq", "in", "not_in", "contains")
FIELDS = ("status", "email", "first_name", "last_name", "timezone")
GROUP_KEYS = ("all", "any")


# --- validation -----------------------------------------------------------------------------------------


class _RuleError(Exception):
    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message


def validate_rules(rules: Any) -> None:
    """Raise common.errors.ValidationError naming the first bad path (e.g. `rules.all[0].op`)."""
    counter = [0]
    try:
        if not isinstance(rules, dict) or not any(key in rules for key in GROUP_KEYS):
            raise _RuleError("rules", 'rules must be an object with "all" or "any", e.g. {"all": [...]}.')
        _validate_group(rules, "rules", depth=1, counter=counter)
    except _RuleError as exc:
        raise errors.ValidationError(
            message=f"Invalid segment rules at {exc.path}: {exc.message}", details={exc.path: [exc.message]}
        ) from None


def _validate_group(node: dict, path: str, *, depth: int, counter: list[int]) -> None:
    if depth > MAX_DEPTH:
        raise _RuleError(path, f"Groups may be nested at most {MAX_DEPTH} levels deep.")
    if len(node) != 1:
        raise _RuleError(path, 'A group has exactly one key, "all" or "any".')
    key = next(iter(node))
    if key not in GROUP_KEYS:
        raise _RuleError(f"{path}.{key}", 'Unknown key; a group is {"all": [...]} or {"any": [...]}.')
    children = node[key]
    path = f"{path}.{key}"
    if not isinstance(children, list) or not children:
        raise _RuleError(path, "Must be a non-empty list of conditions or groups.")
    for index, child in enumerate(children):
        child_path = f"{path}[{index}]"
        if not isinstance(child, dict):
            raise _RuleError(child_path, "Must be an object (a condition or a group).")
        if any(k in child for k in GROUP_KEYS):
            _validate_group(child, child_path, depth=depth + 1, counter=counter)
        else:
            counter[0] += 1
            if counter[0] > MAX_CONDITIONS:
                raise _RuleError(child_path, f"A segment may have at most {MAX_CONDITIONS} conditions.")
            _validate_condition(child, child_path)


def _validate_condition(cond: dict, path: str) -> None:
    kinds = [k for k in ("attribute", "label", "field") if k in cond]
    if len(kinds) != 1:
        raise _RuleError(path, 'A condition has exactly one of "attribute", "label" or "field".')
    kind = kinds[0]
    allowed_keys = {kind, "op"} if kind == "label" else {kind, "op", "value"}
    for key in cond:
        if key not in allowed_keys:
            raise _RuleError(f"{path}.{key}", "Unknown key.")
    op = cond.get("op")
    ops = {"attribute": ATTRIBUTE_OPS, "label": LABEL_OPS, "field": FIELD_OPS}[kind]
    if op not in ops:
        raise _RuleError(f"{path}.op", f"Unknown operator {op!r}; expected one of: {', '.join(ops)}.")

    if kind == "label":
        if not isinstance(cond["label"], str) or _as_uuid(cond["label"]) is None:
            raise _RuleError(f"{path}.label", "Must be a label id (UUID).")
        return

    if kind == "attribute":
        name = cond["attribute"]
        if not isinstance(name, str) or not name.strip() or len(name) > 100 or "\x00" in name:
            raise _RuleError(
                f"{path}.attribute", "Must be a non-empty attribute name of at most 100 characters."
            )
    elif cond["field"] not in FIELDS:
        raise _RuleError(
            f"{path}.field", f"Unknown field {cond['field']!r}; expected one of: {', '.join(FIELDS)}."
        )

    value_path = f"{path}.value"
    if op in ("exists", "not_exists"):
        if "value" in cond:
            raise _RuleError(value_path, f"'{op}' takes no value.")
        return
    if "value" not in cond:
        raise _RuleError(value_path, "This key is required.")
    value = cond["value"]
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST_VALUES:
            raise _RuleError(value_path, f"Must be a non-empty list of at most {MAX_LIST_VALUES} values.")
        for index, item in enumerate(value):
            _validate_scalar(item, f"{value_path}[{index}]", kind=kind)
    elif op == "contains":
        if not isinstance(value, str) or not value:
            raise _RuleError(value_path, "Must be a non-empty string.")
        _validate_scalar(value, value_path, kind=kind)
    elif op in ("gt", "gte", "lt", "lte"):
        # Numbers compare as numbers, strings as text (ISO dates sort correctly); never one with the other.
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _RuleError(value_path, "Must be a number or a string.")
        _validate_scalar(value, value_path, kind=kind)
    else:
        _validate_scalar(value, value_path, kind=kind)
    if kind == "field" and cond["field"] == "status":
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item not in Contact.Status.values:
                choices = ", ".join(Contact.Status.values)
                raise _RuleError(value_path, f"Unknown status {item!r}; expected one of: {choices}.")


def _validate_scalar(value: Any, path: str, *, kind: str) -> None:
    if kind == "field":
        if not isinstance(value, str):
            raise _RuleError(path, "Must be a string.")
    elif isinstance(value, float) and value != value:  # NaN is not JSON
        raise _RuleError(path, "Must be a finite number.")
    elif not isinstance(value, (str, int, float, bool)):
        raise _RuleError(path, "Must be a string, a number or a boolean.")
    if isinstance(value, str) and (len(value) > MAX_STRING_LENGTH or "\x00" in value):
        raise _RuleError(path, f"Must be at most {MAX_STRING_LENGTH} characters, without NUL.")


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def rule_label_ids(rules: dict) -> list[tuple[str, uuid.UUID]]:
    """(path, label id) of every label condition of valid rules, so a service can check that each is a
    label of the segment's workspace."""
    found: list[tuple[str, uuid.UUID]] = []

    def walk(node: dict, path: str) -> None:
        key = next(iter(node))
        for index, child in enumerate(node[key]):
            child_path = f"{path}.{key}[{index}]"
            if any(k in child for k in GROUP_KEYS):
                walk(child, child_path)
            elif "label" in child:
                found.append((f"{child_path}.label", _as_uuid(child["label"])))

    walk(rules, "rules")
    return found


# --- compilation ----------------------------------------------------------------------------------------


class JsonValueType(Func):
    """The JSON type of attributes[key] as one of string|number|boolean|null|object|array (NULL when the
    key is absent), the same words on PostgreSQL and SQLite."""

    output_field = CharField()

    def __init__(self, key: str):
        super().__init__(F("attributes"))
        self.key = key

    def as_postgresql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        return f"jsonb_typeof({column} -> %s)", (*params, self.key)

    def as_sqlite(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        path = compile_json_path([self.key])
        sql = (
            f"CASE json_type({column}, %s) WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' "
            f"WHEN 'text' THEN 'string' WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' "
            f"ELSE json_type({column}, %s) END"
        )
        return sql, (*params, path, *params, path)


def compile_rules(*, workspace: Workspace, rules: dict) -> Q:
    """A Q over Contact selecting the workspace's contacts that match `rules` (validated here too, so
    a hand-edited row cannot compile to something unintended)."""
    validate_rules(rules)
    return Q(workspace=workspace) & _compile_group(rules, workspace)


def _compile_group(node: dict, workspace: Workspace) -> Q:
    key = next(iter(node))
    compiled = [
        _compile_group(child, workspace)
        if any(k in child for k in GROUP_KEYS)
        else _compile_condition(child, workspace)
        for child in node[key]
    ]
    result = compiled[0]
    for q in compiled[1:]:
        result = (result & q) if key == "all" else (result | q)
    return result


def _compile_condition(cond: dict, workspace: Workspace) -> Q:
    if "label" in cond:
        # EXISTS, not a join: two label conditions in one group must not have to match the same row.
        member = Contact.labels.through.objects.filter(
            contact_id=OuterRef("pk"), label_id=_as_uuid(cond["label"]), label__workspace=workspace
        )
        return Q(Exists(member)) if cond["op"] == "has" else ~Q(Exists(member))
    if "field" in cond:
        return _compile_field(cond["field"], cond["op"], cond["value"])
    return _compile_attribute(cond["attribute"], cond["op"], cond.get("value"))


def _compile_field(field: str, op: str, value) -> Q:
    if field == "email":
        value = [v.strip().lower() for v in value] if isinstance(value, list) else value.strip().lower()
    if op == "contains":
        return Q(**{f"{field}__icontains": value})
    if field in ("status", "email"):
        # Stored normalised (choices, lower-cased): exact comparison keeps the index usable.
        positive = Q(**{f"{field}__in": value}) if op in ("in", "not_in") else Q(**{field: value})
    elif op in ("in", "not_in"):
        positive = Q()
        for item in value:
            positive |= Q(**{f"{field}__iexact": item})
    else:
        positive = Q(**{f"{field}__iexact": value})
    return ~positive if op in ("neq", "not_in") else positive


def _compile_attribute(name: str, op: str, value) -> Q:
    # Lookup objects, not `attributes__<name>` kwargs: an attribute called "contains" or "a__b" must stay
    # one key, not become a JSON containment test or a nested path.
    attributes = ExpressionWrapper(F("attributes"), output_field=JSONField())  # typed: values become JSON
    key = KeyTransform(name, attributes)
    has_key = Q(HasKey(attributes, name))
    if op == "exists":
        return has_key
    if op == "not_exists":
        return ~has_key
    if op == "eq":
        return has_key & Q(KeyTransformExact(key, value))
    if op == "neq":
        return ~has_key | ~Q(KeyTransformExact(key, value))
    if op == "in":
        return has_key & Q(KeyTransformIn(key, value))
    if op == "not_in":
        return ~has_key | ~Q(KeyTransformIn(key, value))
    if op == "contains":
        return Q(Exact(JsonValueType(name), Value("string"))) & Q(KeyTransformIContains(key, value))
    # gt, gte, lt, lte: only values of the same JSON type compare, on every database.
    json_type = "string" if isinstance(value, str) else "number"
    comparison = {"gt": KeyTransformGt, "gte": KeyTransformGte, "lt": KeyTransformLt, "lte": KeyTransformLte}[
        op
    ]
    return Q(Exact(JsonValueType(name), Value(json_type))) & Q(comparison(key, value))

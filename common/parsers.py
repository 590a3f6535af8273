from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from common import errors
from common.jsontree import depth_exceeds, dotted, has_lone_surrogate, strings

# RFC 8259 §9 lets a parser limit nesting depth. The deepest legitimate body is a segment's rules (five group
# levels, two JSON levels each, plus the condition and its value list); 32 leaves room for attributes and
# substitution data while every later walk, serializer and jsonb cast stays far from Python's recursion limit
# (docs/decisions/022).
MAX_JSON_DEPTH = 32


class ObjectJSONParser(JSONParser):
    """Every JSON body of this API is an object; anything else is MALFORMED_REQUEST, not a confusing
    field error (docs/architecture.md#errors). The body may nest at most MAX_JSON_DEPTH levels, and no
    string in it (key or value) may hold an unpaired surrogate (docs/decisions/022)."""

    def parse(self, stream, media_type=None, parser_context=None):
        too_deep = f"The request body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep."
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            # The C decoder counts its nesting against the interpreter's recursion limit and gives up first.
            raise ParseError(too_deep) from None
        if not isinstance(data, dict):
            raise ParseError("The request body must be a JSON object.")
        if depth_exceeds(data, MAX_JSON_DEPTH):
            raise ParseError(too_deep)
        refuse_lone_surrogates(data)
        return data


def refuse_lone_surrogates(data: dict) -> None:
    """JSON may escape half of a UTF-16 pair ("\\ud800"), which decodes to a code point UTF-8 cannot encode
    (RFC 8259 §8.2, RFC 3629 §3): PostgreSQL, the JSON renderer and the MIME layer would all fail on it later,
    outside the envelope. Refused here, naming the top-level field it is under."""
    for path, text in strings(data):
        if has_lone_surrogate(text):
            field = path[0] if isinstance(path[0], str) and not has_lone_surrogate(path[0]) else "non_field_errors"
            raise errors.ValidationError(
                details={field: [f"Text may not contain an unpaired UTF-16 surrogate (at {dotted(path)})."]}
            )

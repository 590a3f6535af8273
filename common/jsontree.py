"""Walks over parsed JSON values without recursion.

A JSON document can nest far deeper than Python's call stack (about 1,000 frames, fewer once a view is on
it), so a recursive walk over request data is a RecursionError, a 500, waiting for a deep enough body. The
API parser caps the depth (common.parsers, docs/decisions/022); these walks do not rely on it, so the admin
and the services may use them on data that did not come through the parser."""

import re
from collections.abc import Iterator

Path = tuple[str | int, ...]


def depth_exceeds(value: object, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels deep (a scalar is depth 0, `{}` depth 1).
    Stops at the first node past the limit."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        if depth > limit:
            return True
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list)))
    return False


def strings(value: object) -> Iterator[tuple[Path, str]]:
    """Every string of a JSON value, object keys included, with the path that leads to it."""
    stack: list[tuple[Path, object]] = [((), value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            yield path, node
        elif isinstance(node, dict):
            for key, item in node.items():
                if isinstance(key, str):
                    yield (*path, key), key
                stack.append(((*path, key), item))
        elif isinstance(node, list):
            stack.extend(((*path, index), item) for index, item in enumerate(node))


SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    # json.loads joins an escaped pair ("\\ud83d\\ude00") into one code point; what is left is unpaired.
    return not text.isascii() and SURROGATE.search(text) is not None


def dotted(path: Path) -> str:
    """`("attributes", "tags", 0)` -> `attributes.tags[0]`, for error messages. A surrogate in a key is
    written as its escape, so the message itself stays encodable as UTF-8."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", part)
            text += f".{part}" if text else part
    return text

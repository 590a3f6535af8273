"""common.jsontree: walks that survive any nesting depth."""

from audience.models import validate_attributes
from common.jsontree import depth_exceeds, dotted, has_lone_surrogate, strings
from common.serializers import reject_nul


def nested(levels: int, leaf: object = "x") -> object:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def test_depth_is_counted_in_objects_and_arrays():
    assert not depth_exceeds({"a": [1, {"b": []}]}, 4)
    assert depth_exceeds({"a": [1, {"b": []}]}, 3)
    assert not depth_exceeds("scalar", 0)


def test_depth_of_a_value_deeper_than_the_stack_is_found():
    assert depth_exceeds(nested(100_000), 32)


def test_strings_include_keys_with_their_paths():
    found = sorted(strings({"a": ["x", {"k": "y"}]}))
    assert found == [(("a",), "a"), (("a", 0), "x"), (("a", 1, "k"), "k"), (("a", 1, "k"), "y")]


def test_reject_nul_finds_nul_deeper_than_the_stack():
    try:
        reject_nul({"a": nested(5_000, "bad\x00")})
    except Exception as exc:  # noqa: BLE001 - the assertion is about which exception
        assert "NUL" in str(exc)
    else:
        raise AssertionError("NUL not found")


def test_attributes_validator_walks_deep_values_without_recursion():
    # Deeper than the old recursive walk survived (about 400), shallower than json.dumps' own limit.
    validate_attributes({"a": nested(600)})


def test_dotted_path_escapes_a_surrogate_in_a_key():
    assert dotted(("attributes", "\ud800", 0)) == "attributes.\\ud800[0]"


def test_a_paired_surrogate_is_not_a_lone_surrogate():
    assert has_lone_surrogate("a\udc00")
    assert not has_lone_surrogate("party \U0001f389")

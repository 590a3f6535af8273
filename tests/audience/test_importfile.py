"""The stored import file (audience.importfile): written in parts, read back from any checkpoint."""

import io

import pytest

from audience import importfile
from audience.importfile import Records, parts_write
from audience.models import ContactImport, ContactImportPart
from common import errors

# A BOM, a quoted field holding a line break, CRLF and bare CR line ends, blank lines, and characters of
# two, three and four bytes, so that tiny parts cut through all of them.
TRICKY = (
    "\ufeffemail,first_name,note\r\n"
    'ana@example.org,Ana,"two\r\nlines"\r\n'
    "\r\n"
    "bé@example.org,Bé,€uro\r"
    "cy@example.org,Cy,🙂\n"
    "\n"
    'di@example.org,Di,"a ""quoted"" word"\n'
    "ed@example.org,Ed,last line without an end"
).encode()


@pytest.fixture
def tiny_parts(monkeypatch):
    monkeypatch.setattr(importfile, "PART_BYTES", 5)


def _stored(workspace, payload: bytes) -> ContactImport:
    contact_import = ContactImport.objects.create(workspace=workspace, filename="c.csv")
    parts_write(import_id=contact_import.id, fileobj=io.BytesIO(payload), limit=10**6)
    return contact_import


def _read_all(records: Records) -> list[tuple[int, list[str], int, int]]:
    """(line, cells, offset after, line after) of every record left."""
    return [(line, cells, records.offset, records.line) for line, cells in records]


def test_parts_hold_the_file_in_order(workspace, tiny_parts):
    contact_import = _stored(workspace, TRICKY)
    parts = list(ContactImportPart.objects.filter(contact_import=contact_import).order_by("start"))
    assert b"".join(bytes(p.data) for p in parts) == TRICKY
    assert [p.start for p in parts] == list(range(0, len(TRICKY), 5))


def test_records_carry_their_first_line_and_skip_blank_ones(workspace, tiny_parts):
    records = Records(_stored(workspace, TRICKY).id)
    assert records.next_row() == ["email", "first_name", "note"]
    assert [(line, cells) for line, cells, _, _ in _read_all(records)] == [
        (2, ["ana@example.org", "Ana", "two\r\nlines"]),
        (5, ["bé@example.org", "Bé", "€uro"]),
        (6, ["cy@example.org", "Cy", "🙂"]),
        (8, ["di@example.org", "Di", 'a "quoted" word']),
        (9, ["ed@example.org", "Ed", "last line without an end"]),
    ]


def test_reading_from_any_checkpoint_gives_the_same_rest_of_the_file(workspace, tiny_parts):
    contact_import = _stored(workspace, TRICKY)
    records = Records(contact_import.id)
    records.next_row()
    checkpoints = [(records.offset, records.line, [])]
    for line, cells, offset, after in _read_all(records):
        for _, _, rest in checkpoints:
            rest.append((line, cells))
        checkpoints.append((offset, after, []))

    for offset, line, rest in checkpoints:
        resumed = Records(contact_import.id, offset=offset, line=line)
        assert [(n, cells) for n, cells in resumed] == rest, f"from byte {offset}, line {line}"


def test_the_last_checkpoint_is_the_end_of_the_file(workspace, tiny_parts):
    records = Records(_stored(workspace, TRICKY).id)
    list(records)
    assert records.offset == len(TRICKY)


def test_an_empty_file_has_no_rows(workspace):
    assert Records(_stored(workspace, b"").id).next_row() is None


def test_invalid_utf8_is_refused_with_its_byte_position_even_across_parts(workspace, monkeypatch):
    payload = b"email\nab\xc3\xff@x.org\n"  # a two-byte lead at byte 8, then no continuation byte
    monkeypatch.setattr(importfile, "PART_BYTES", 9)  # the lead ends the first part
    with pytest.raises(errors.ValidationError) as caught:
        _stored(workspace, payload)
    assert "invalid byte at position 8" in caught.value.details["file"][0]


def test_a_file_ending_inside_a_character_is_refused(workspace, tiny_parts):
    with pytest.raises(errors.ValidationError) as caught:
        _stored(workspace, "email\nb€".encode()[:-1])
    assert "UTF-8" in caught.value.details["file"][0]


def test_a_file_over_the_limit_is_refused_before_it_is_all_read(workspace, tiny_parts):
    contact_import = ContactImport.objects.create(workspace=workspace)
    upload = io.BytesIO(b"email\n" + b"a@x.org\n" * 100)
    with pytest.raises(errors.PayloadTooLarge):
        parts_write(import_id=contact_import.id, fileobj=upload, limit=12)
    assert upload.tell() <= 15

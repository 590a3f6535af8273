"""The stored file of a contact import: written part by part at upload, read back as a stream of CSV records
from any checkpoint (docs/decisions/019). Nothing here holds more than one part of a file in memory."""

import codecs
import csv
import io
from collections.abc import Iterator
from typing import BinaryIO
from uuid import UUID

from audience.models import ContactImportPart
from common import errors

# Small enough that re-reading the part a checkpoint falls in costs little, large enough that a 32 MiB
# upload is ~128 rows.
PART_BYTES = 256 * 1024


def parts_write(*, import_id: UUID, fileobj: BinaryIO, limit: int) -> int:
    """Copy the upload into ContactImportPart rows, checking on the way that it is UTF-8 and at most `limit`
    bytes. Returns its size. The caller's transaction makes the parts and the import appear together."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    while True:
        block = fileobj.read(PART_BYTES)
        if not block:
            break
        if size + len(block) > limit:
            raise errors.PayloadTooLarge(f"The file is over the {limit}-byte limit for a contact import.")
        _check_utf8(decoder, block, size, final=False)
        ContactImportPart.objects.create(contact_import_id=import_id, start=size, data=block)
        size += len(block)
    _check_utf8(decoder, b"", size, final=True)
    return size


def _check_utf8(decoder, block: bytes, size: int, *, final: bool) -> None:
    pending = len(decoder.getstate()[0])  # bytes of a character split across two blocks
    try:
        decoder.decode(block, final=final)
    except UnicodeDecodeError as exc:
        raise errors.ValidationError.for_field(
            "file",
            f"The file is not UTF-8 text (invalid byte at position {size - pending + exc.start}); "
            "export it as CSV UTF-8.",
        ) from None


class _PartStream(io.RawIOBase):
    """The stored file from byte `offset` on, fetched one part at a time."""

    def __init__(self, import_id: UUID, offset: int):
        super().__init__()
        self.import_id = import_id
        part = (
            ContactImportPart.objects.filter(contact_import_id=import_id, start__lte=offset)
            .order_by("-start")
            .values_list("start", "data")
            .first()
        )
        self.data, self.pos = (memoryview(part[1]), offset - part[0]) if part else (memoryview(b""), 0)
        self.next_start = part[0] + len(part[1]) if part else 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.pos >= len(self.data):
            data = (
                ContactImportPart.objects.filter(contact_import_id=self.import_id, start=self.next_start)
                .values_list("data", flat=True)
                .first()
            )
            if data is None:
                return 0
            self.data, self.pos = memoryview(data), 0
            self.next_start += len(data)
        n = min(len(buffer), len(self.data) - self.pos)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


class _Position:
    __slots__ = ("offset", "line")

    def __init__(self, offset: int, line: int):
        self.offset, self.line = offset, line


def _counted_lines(text: io.TextIOWrapper, position: _Position) -> Iterator[str]:
    # csv.reader pulls exactly the lines of the record it is building, so after each record the position
    # stands just past it. A line's byte length is its character length when it is ASCII.
    for line in text:
        position.offset += len(line) if line.isascii() else len(line.encode())
        position.line += 1
        yield line


class Records:
    """CSV records of the stored file from a checkpoint (byte offset, line number), read lazily.

    `offset` and `line` always describe the position after the last record read: that is the checkpoint to
    store with a chunk. Lines are split as with open(newline=""), so quoted fields may hold line breaks;
    line numbers count physical lines, the header being line 1."""

    def __init__(self, import_id: UUID, *, offset: int = 0, line: int = 1):
        stream = io.BufferedReader(_PartStream(import_id, offset), buffer_size=PART_BYTES)
        if offset == 0 and stream.peek(len(codecs.BOM_UTF8))[: len(codecs.BOM_UTF8)] == codecs.BOM_UTF8:
            # Spreadsheet programs put a BOM in front of the header.
            stream.read(len(codecs.BOM_UTF8))
            offset = len(codecs.BOM_UTF8)
        self._position = _Position(offset, line)
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        # The line generator must not refer to self: that cycle would keep every chunk's reader and its
        # part buffer alive until the cyclic garbage collector happened to run.
        self._reader = csv.reader(_counted_lines(text, self._position))

    @property
    def offset(self) -> int:
        return self._position.offset

    @property
    def line(self) -> int:
        return self._position.line

    def next_row(self) -> list[str] | None:
        """The next record as read, blank or not (the header); None at the end of the file."""
        return next(self._reader, None)

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        """(line where the record starts, cells) for each record that is not blank."""
        while True:
            line = self.line
            cells = next(self._reader, None)
            if cells is None:
                return
            if any(cell.strip() for cell in cells):
                yield line, cells

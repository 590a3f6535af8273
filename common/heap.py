"""A steadier C heap for numpy loops that allocate the same few megabytes over and over (the STO fan-out).

glibc serves each array of a megabyte or so with a fresh mmap, or gives the top of the heap back as soon
as a few such arrays are freed; either way the next chunk's arrays start as untouched pages, and the page
faults took two thirds of the scorer's time (bench/run fanout, docs/decisions/032). Inside `steady_heap`
allocations up to 2 MB come from the heap and up to 8 MB of free heap is kept; on leaving, the free heap
is given back (malloc_trim). mallopt(3) is process-wide, so this is for a worker's task, not for a
threaded web server. Elsewhere than glibc it does nothing.
"""

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterator

# mallopt(3) parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc's starting values. Setting either parameter switches off glibc's own raising of the mmap threshold
# (it follows the largest block freed) for the rest of the process, so afterwards the worker keeps these
# fixed ones: allocations over 128 KB are mmapped, as a fresh process's are until it frees a large block.
_DEFAULT = 128 * 1024


def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


@contextlib.contextmanager
def steady_heap(*, mmap_threshold: int = 2 << 20, trim_threshold: int = 8 << 20) -> Iterator[None]:
    if _LIBC is None:
        yield
        return
    _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    _LIBC.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    try:
        yield
    finally:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _DEFAULT)
        _LIBC.mallopt(_M_TRIM_THRESHOLD, _DEFAULT)
        _LIBC.malloc_trim(0)

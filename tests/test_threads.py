"""The thread helpers of the concurrency tests (tests/threads.py) fail the test when a thread fails."""

import threading

import pytest

from tests.threads import in_background, run_threads


def test_run_threads_returns_what_each_call_returned_in_order():
    assert run_threads(lambda: 1, lambda: 2, lambda: 3) == [1, 2, 3]


def test_run_threads_raises_what_a_thread_raised():
    def fail():
        raise ValueError("from the thread")

    with pytest.raises(ValueError, match="from the thread"):
        run_threads(lambda: 1, fail, lambda: 3)


def test_run_threads_raises_the_first_exception_and_notes_the_others():
    first_failed = threading.Event()

    def first():
        try:
            raise KeyError("first")
        finally:
            first_failed.set()

    def second():
        first_failed.wait(5)
        raise ValueError("second")

    with pytest.raises(KeyError) as caught:
        run_threads(second, first)
    assert any("ValueError: second" in note for note in caught.value.__notes__)


def test_run_threads_fails_when_a_thread_is_still_running_at_the_timeout():
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match="still running"):
            run_threads(lambda: release.wait(10), timeout=0.2)
    finally:
        release.set()


def test_in_background_raises_what_its_thread_raised_at_the_end_of_the_block():
    def fail():
        raise ValueError("from the background")

    with pytest.raises(ValueError, match="from the background"), in_background(fail):
        pass


def test_in_background_stops_its_thread_before_waiting_for_it():
    release = threading.Event()

    with in_background(lambda: release.wait(10), stop=release.set, timeout=2):
        pass

    assert release.is_set()

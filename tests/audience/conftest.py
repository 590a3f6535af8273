import pytest

from tests import queues


@pytest.fixture(autouse=True)
def _empty_imports_queue():
    # Earlier tests' import tasks must not run in this one.
    queues.purge("imports")
    yield

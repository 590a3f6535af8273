import io
import json
import logging

from celery import shared_task
from pythonjsonlogger.json import JsonFormatter

from common.logcontext import LogIdsFilter, bind_task, log_ids, unbind_task


@shared_task
def _a_task(run_id, delivery_ids, note=""):
    return None


def _json_logger() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(LogIdsFilter())
    logger = logging.getLogger("tests.logcontext")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_log_line_of_a_task_carries_the_ids_the_task_was_called_with():
    logger, stream = _json_logger()
    bind_task(_a_task, ("a1b2", [7, 8]), {"note": "x"})
    try:
        logger.warning("batch done")
    finally:
        unbind_task()
    line = json.loads(stream.getvalue())
    assert line["message"] == "batch done"
    assert line["run_id"] == "a1b2" and line["delivery_ids"] == "7,8"
    assert "note" not in line


def test_log_ids_bound_in_a_block_leave_with_it():
    logger, stream = _json_logger()
    with log_ids(campaign_id="c-1"):
        logger.info("inside")
    logger.warning("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["campaign_id"] == "c-1"
    assert "campaign_id" not in outside

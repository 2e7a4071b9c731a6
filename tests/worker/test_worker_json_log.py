"""ZIPFLOW_LOG_FORMAT=json: the worker's outcome lines carry the key, etag, run id, outcome
and duration as fields a log collector can filter on."""

import io
import json
import logging

from worker_support import minio_event, publish_event, wait_for, write_zip

from shared.logs import json_formatter
from tests.worker.test_worker_consumer import BIRTH, finished_runs, upload


def test_a_load_is_one_json_object_with_its_fields(tmp_path, settings, minio, broker, start_worker):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())  # what ZIPFLOW_LOG_FORMAT=json installs
    worker_log = logging.getLogger("zipflow.worker")
    worker_log.addHandler(handler)
    try:
        start_worker(settings)
        etag = upload(
            minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a.zip"
        )
        publish_event(broker, settings, minio_event(settings.source_bucket, "a.zip", etag))
        [run] = finished_runs(1)
        wait_for(lambda: "processed run" in stream.getvalue(), what="the outcome line")
    finally:
        worker_log.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [loaded] = [line for line in lines if line.get("outcome") == "loaded"]
    assert (loaded["key"], loaded["etag"], loaded["run_id"]) == ("a.zip", etag, run.id)
    assert loaded["duration"] >= 0
    assert (loaded["level"], loaded["logger"]) == ("INFO", "zipflow.worker")
    assert loaded["message"].startswith(
        f"event s3:ObjectCreated:Put {settings.source_bucket}/a.zip"
    )
    assert loaded["time"].endswith("+00:00")

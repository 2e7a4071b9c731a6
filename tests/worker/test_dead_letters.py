"""Dead letters say why they died, `zipflow dead-letters` lists them, and `--replay` puts
them back on the work queue once the cause is fixed, losing none."""

from dataclasses import replace

import pika
from worker_support import minio_event, publish_event, take_message, wait_for, write_zip

from shared.messages import REPROCESS_TYPE
from shared.models import Run
from tests.worker.test_worker_cli import zipflow
from tests.worker.test_worker_consumer import BIRTH, finished_runs, queue_depths, upload
from worker.dead_letters import ERROR_HEADER, list_dead_letters


def dead_letters_waiting(broker, settings) -> int:
    return broker.queue_declare(settings.dead_letter, passive=True).method.message_count


def test_a_dead_letter_carries_its_reason_and_replay_loads_it_once_fixed(
    tmp_path, settings, minio, broker, start_worker, capsys
):
    # The cause: the source bucket is gone, so every delivery fails the same way.
    minio.remove_bucket(settings.source_bucket)
    once = replace(settings, max_deliveries=1)
    worker = start_worker(once)
    publish_event(broker, settings, minio_event(settings.source_bucket, "drops/a.zip"))
    wait_for(lambda: dead_letters_waiting(broker, settings) == 1, what="the dead letter")

    [letter] = list_dead_letters(settings)
    assert letter.key == "drops/a.zip"
    assert letter.deliveries == 1
    assert letter.reason.startswith("failed on its one delivery: ")
    assert "S3 NoSuchBucket: " in letter.reason
    assert letter.when.endswith("Z")
    assert dead_letters_waiting(broker, settings) == 1, "listing leaves them where they are"
    assert zipflow(settings, "dead-letters") == 0
    listed = capsys.readouterr().out
    assert "drops/a.zip" in listed and "NoSuchBucket" in listed
    assert "1 dead letter(s)" in listed

    # The cause removed: the bucket is back, holding the zip the event announced.
    minio.make_bucket(settings.source_bucket)
    upload(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "drops/a.zip"
    )
    assert zipflow(settings, "dead-letters", "--replay") == 0
    assert "replayed 1 dead letter(s)" in capsys.readouterr().out
    [run] = finished_runs(1)
    assert (run.status, run.source) == ("succeeded", f"{settings.source_bucket}/drops/a.zip")
    worker.stop()
    assert queue_depths(broker, settings) == (0, 0)


def test_replay_of_one_key_leaves_the_others(settings, broker, capsys):
    assert zipflow(settings, "setup") == 0
    for key in ("a.zip", "b.zip"):
        broker.basic_publish(
            settings.dead_letter,
            settings.queue,
            minio_event(settings.source_bucket, key),
            properties=_dead(f"failed: {key}"),
        )
    assert zipflow(settings, "dead-letters", "--replay", "--key", "b.zip") == 0
    assert "replayed 1 dead letter(s)" in capsys.readouterr().out
    assert [letter.key for letter in list_dead_letters(settings)] == ["a.zip"]
    properties, body = take_message(broker, settings.queue)
    assert b"b.zip" in body
    # Fresh on the work queue: no trace of its death, marked as a replay.
    assert ERROR_HEADER not in properties.headers
    assert properties.headers["x-zipflow-replayed"] is True


def test_a_replayed_reprocess_command_that_failed_is_tried_again(
    tmp_path, settings, minio, broker, start_worker
):
    etag = upload(
        minio, settings, write_zip(tmp_path / "a.zip", {"1": ("Ann", "Lee", BIRTH)}), "a.zip"
    )
    assert etag
    # A reprocess whose run failed for a transient reason, then was dead-lettered.
    run = Run.create(source=f"{settings.source_bucket}/a.zip", trigger="reprocess", status="failed")
    worker = start_worker(settings)
    broker.basic_publish(
        settings.dead_letter,
        settings.queue,
        f'{{"command": "reprocess", "run_id": {run.id}, "key": "a.zip"}}'.encode(),
        properties=_dead("failed on each of 3 deliveries", kind=REPROCESS_TYPE),
    )
    assert zipflow(settings, "dead-letters", "--replay") == 0
    wait_for(lambda: Run.get_by_id(run.id).status == "succeeded", what="the replayed load")
    worker.stop()


def test_without_the_queue_it_says_what_to_do(settings, broker, capsys):
    assert zipflow(settings, "dead-letters") == 1
    assert "run `zipflow setup` or start the worker" in capsys.readouterr().err


def test_key_without_replay_is_refused(settings, capsys):
    assert zipflow(settings, "dead-letters", "--key", "a.zip") == 2
    assert "--key goes with --replay" in capsys.readouterr().err


def _dead(reason: str, kind: str | None = None) -> pika.BasicProperties:
    """The properties of a message the worker dead-lettered."""
    return pika.BasicProperties(
        type=kind,
        delivery_mode=2,
        headers={
            ERROR_HEADER: reason,
            "x-zipflow-deliveries": 3,
            "x-zipflow-dead-lettered-at": "2026-12-02T05:00:00Z",
        },
    )

"""A load whose store committed is a succeeded run, even when a step after the commit fails."""

import io
from pathlib import Path

from minio import Minio
from worker_support import write_zip

from shared.config import Settings
from shared.models import Run, User
from shared.storage import MinioStore, SourceBucket
from worker.handler import Handler


class ProcessedBucketRefusingTheCsv(MinioStore):
    """The processed bucket, with output.csv's upload failing as if MinIO went away."""

    def put(self, key: str, data: bytes, content_type: str, version: str | None = None) -> None:
        if key == "output.csv":
            raise ConnectionError("MinIO went away")
        super().put(key, data, content_type, version)


def test_output_csv_failing_after_the_commit_is_a_warning_on_a_succeeded_run(
    db, minio: Minio, settings: Settings, tmp_path: Path, worker_logs
) -> None:
    source = SourceBucket(minio, settings.source_bucket)
    store = ProcessedBucketRefusingTheCsv(minio, settings.processed_bucket)
    archive = write_zip(tmp_path / "a.zip", {"1": ("Ada", "Lovelace", 0)}).read_bytes()
    minio.put_object(settings.source_bucket, "a.zip", io.BytesIO(archive), len(archive))

    run = Handler(settings, source, store).load(source.stat("a.zip"), "test", "event")

    stored = Run.get_by_id(run.id)
    assert (stored.status, stored.error) == ("succeeded", None)
    assert stored.warnings == [
        f"writing output.csv to {store.label} failed: ConnectionError: MinIO went away"
    ]
    assert [user.user_id for user in User.select()] == ["1"]
    assert f"test -> run {run.id}: writing output.csv to {store.label} failed" in worker_logs.text


def test_minio_keeps_output_csvs_data_version_until_the_object_is_replaced(
    db, minio: Minio, settings: Settings, tmp_path: Path
) -> None:
    """The version rides on the object as user metadata, so an upload by anyone else
    (which carries none) tells the next load to write output.csv again."""
    store = MinioStore(minio, settings.processed_bucket)
    assert store.version_of("output.csv") is None
    store.put("output.csv", b"user_id\n", "text/csv", "7.20261203")
    assert store.version_of("output.csv") == "7.20261203"
    minio.put_object(settings.processed_bucket, "output.csv", io.BytesIO(b"x\n"), 2)
    assert store.version_of("output.csv") is None


class CountingStore(MinioStore):
    """The processed bucket, counting what is written to it."""

    def __init__(self, client: Minio, bucket: str) -> None:
        super().__init__(client, bucket)
        self.written: list[str] = []

    def put(self, key: str, data: bytes, content_type: str, version: str | None = None) -> None:
        self.written.append(key)
        super().put(key, data, content_type, version)


def test_a_reload_that_changes_nothing_leaves_output_csv_in_minio_alone(
    db, minio: Minio, settings: Settings, tmp_path: Path
) -> None:
    source = SourceBucket(minio, settings.source_bucket)
    store = CountingStore(minio, settings.processed_bucket)
    archive = write_zip(tmp_path / "a.zip", {"1": ("Ada", "Lovelace", 0)}).read_bytes()
    minio.put_object(settings.source_bucket, "a.zip", io.BytesIO(archive), len(archive))
    handler = Handler(settings, source, store)
    handler.load(source.stat("a.zip"), "test", "event")
    assert store.written == ["output.csv"]

    again = handler.load(source.stat("a.zip"), "test", "reprocess")
    assert (Run.get_by_id(again.id).status, Run.get_by_id(again.id).unchanged) == ("succeeded", 1)
    assert store.written == ["output.csv"], "an unchanged reload wrote output.csv again"

    minio.remove_object(settings.processed_bucket, "output.csv")
    handler.load(source.stat("a.zip"), "test", "reprocess")
    assert store.written == ["output.csv", "output.csv"]
    body = minio.get_object(settings.processed_bucket, "output.csv").read().decode()
    assert body.splitlines()[1] == "1,Ada,Lovelace,0,"

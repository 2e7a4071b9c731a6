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

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if key == "output.csv":
            raise ConnectionError("MinIO went away")
        super().put(key, data, content_type)


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

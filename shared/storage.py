"""Object storage: where processed images and output.csv go, and where source zips come from.

The pipeline writes through the tiny `ProcessedStore` interface, so the worker can use MinIO
and `zipflow process` a local directory. Keys are built by zipflow from validated user ids,
never taken from archive member names.
"""

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, Protocol

import urllib3
from minio import Minio
from minio.datatypes import Object
from minio.deleteobjects import DeleteObject
from minio.error import S3Error, ServerError

from shared.config import Settings


class ProcessedStore(Protocol):
    """The processed bucket, seen as keys holding bytes."""

    label: str

    def put(
        self, key: str, data: bytes | Path, content_type: str, version: str | None = None
    ) -> None:
        """Store `data` at `key`: bytes, or a file holding them (output.csv can be large),
        with the data `version` it was written from, if any."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def version_of(self, key: str) -> str | None:
        """The data version `put` stored with the object at `key`; None when there is no
        object, it was stored without one, or it was replaced since."""
        ...

    def delete_many(self, keys: Iterable[str]) -> None: ...


class LocalStore:
    """A directory standing in for the processed bucket: `<root>/<bucket>/<key>`."""

    def __init__(self, root: Path, bucket: str) -> None:
        self.base = (root / bucket).resolve()
        self.label = str(self.base)
        self._folders: set[Path] = set()

    def _path(self, key: str) -> Path:
        # Normalised as text, without a system call: a load writes 100,000 images.
        path = Path(os.path.normpath(self.base / key))
        if not path.is_relative_to(self.base):
            raise ValueError(f"object key {key!r} points outside {self.base}")
        return path

    def put(
        self, key: str, data: bytes | Path, content_type: str, version: str | None = None
    ) -> None:
        """Write the object, then its version beside it (`<key>.version`), so that a
        version file older than its object means the object was replaced since."""
        path = self._path(key)
        if path.parent not in self._folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(path.parent)
        partial = path.with_name(path.name + ".part")
        if isinstance(data, Path):
            shutil.copyfile(data, partial)
        else:
            partial.write_bytes(data)
        partial.replace(path)
        if version is not None:
            marker = _version_file(path)
            partial_marker = marker.with_name(marker.name + ".part")
            partial_marker.write_text(version)
            partial_marker.replace(marker)

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def version_of(self, key: str) -> str | None:
        path = self._path(key)
        marker = _version_file(path)
        try:
            if marker.stat().st_mtime_ns < path.stat().st_mtime_ns:
                return None
            return marker.read_text()
        except FileNotFoundError:
            return None

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)


def _version_file(path: Path) -> Path:
    return path.with_name(path.name + ".version")


def processed_store(settings: Settings) -> ProcessedStore:
    """Where images and output.csv live: MinIO, or `data_dir` when no MinIO is configured.

    Every process builds it from the same settings, so `zipflow process` writes images
    where `zipflow api` serves them from, with or without MinIO (ZIPFLOW_STORAGE).
    """
    if settings.uses_minio:
        return MinioStore(minio_client(settings), settings.processed_bucket)
    return LocalStore(settings.data_dir, settings.processed_bucket)


def object_store_label(settings: Settings) -> str:
    """The object store in words, for the line every process logs at start."""
    if settings.uses_minio:
        scheme = "https" if settings.s3_secure else "http"
        return (
            f"MinIO at {scheme}://{settings.s3_endpoint}, buckets {settings.source_bucket}"
            f" and {settings.processed_bucket}"
        )
    return f"the local directory {LocalStore(settings.data_dir, settings.processed_bucket).base}"


class NeedsMinio(Exception):
    """A feature that only works with MinIO was asked for while the store is local."""


def needs_minio(settings: Settings, feature: str) -> str:
    """What to tell a user who asks for `feature`, which only works with MinIO, without it."""
    return (
        f"{feature} needs MinIO and RabbitMQ, and this process uses the local directory"
        f" {settings.data_dir} instead: set ZIPFLOW_S3_ACCESS_KEY and ZIPFLOW_S3_SECRET_KEY"
        " (see docs/configuration.md), or load a local zip with `zipflow process`"
    )


def require_minio(settings: Settings, feature: str) -> None:
    """Refuse `feature` when MinIO is not configured, saying how to get it."""
    if not settings.uses_minio:
        raise NeedsMinio(needs_minio(settings, feature))


# For a caller that must answer quickly, such as the API: a MinIO that does not accept the
# connection within CONNECT_SECONDS, or goes silent for READ_SECONDS, is an error at once,
# after at most one immediate retry of a failed connection or a 502-504.
QUICK_CONNECT_SECONDS = 0.5
QUICK_READ_SECONDS = 3.0
QUICK_RETRIES = 1


def quick_http_client(read_seconds: float = QUICK_READ_SECONDS) -> urllib3.PoolManager:
    """Connections for `minio_client` that give up in about a second, not after minutes.

    The SDK's own default waits five minutes for a connection and retries five times with
    backoff (six seconds against a closed port), right for a worker's download but not for
    an HTTP request someone is waiting on. A read is never retried: it may have been a slow
    upload's body, which cannot be sent again.
    """
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=QUICK_CONNECT_SECONDS, read=read_seconds),
        retries=urllib3.Retry(
            total=QUICK_RETRIES,
            connect=QUICK_RETRIES,
            read=0,
            status=QUICK_RETRIES,
            status_forcelist=(502, 503, 504),
            backoff_factor=0,
            raise_on_status=False,
        ),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
    )


def minio_client(settings: Settings, http_client: urllib3.PoolManager | None = None) -> Minio:
    """The one MinIO client of a process, built from settings; the SDK's connections by default."""
    return Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key or None,
        secret_key=settings.s3_secret_key or None,
        secure=settings.s3_secure,
        http_client=http_client,
    )


# The user metadata `MinioStore.put` stores an object's data version in.
VERSION_METADATA = "X-Amz-Meta-Zipflow-Data-Version"
# The error codes MinIO answers with for a key that holds no object.
MISSING_CODES = ("NoSuchKey", "NoSuchObject")


def _stat(client: Minio, bucket: str, key: str) -> Object | None:
    """The object's metadata, as a HEAD request gives it, or None when there is none."""
    try:
        return client.stat_object(bucket, key)
    except S3Error as error:
        if error.code in MISSING_CODES:
            return None
        raise


class MinioStore:
    """The processed bucket in MinIO."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self.label = f"s3://{bucket}"

    def put(
        self, key: str, data: bytes | Path, content_type: str, version: str | None = None
    ) -> None:
        """Upload the object, with its `version` as user metadata, which MinIO drops when
        anything replaces the object."""
        metadata = {VERSION_METADATA: version} if version is not None else None
        if isinstance(data, Path):
            self.client.fput_object(
                self.bucket, key, str(data), content_type=content_type, metadata=metadata
            )
        else:
            self.client.put_object(
                self.bucket,
                key,
                BytesIO(data),
                len(data),
                content_type=content_type,
                metadata=metadata,
            )

    def version_of(self, key: str) -> str | None:
        found = _stat(self.client, self.bucket, key)
        return None if found is None else (found.metadata or {}).get(VERSION_METADATA)

    def get(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(self.bucket, key)
        except S3Error as error:
            if error.code in MISSING_CODES:
                return None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def delete_many(self, keys: Iterable[str]) -> None:
        objects = [DeleteObject(key) for key in keys]
        for start in range(0, len(objects), 1000):
            errors = list(
                self.client.remove_objects(self.bucket, iter(objects[start : start + 1000]))
            )
            if errors:
                raise RuntimeError(f"could not delete {len(errors)} objects, first: {errors[0]}")


PRECONDITION_FAILED = 412


class ObjectChanged(Exception):
    """The object was replaced after it was checked; its new version has an event of its own."""


@dataclass(frozen=True)
class SourceObject:
    """What zipflow knows of a source zip before reading it."""

    bucket: str
    key: str
    etag: str | None
    size: int | None
    last_modified: datetime | None

    @property
    def label(self) -> str:
        return f"{self.bucket}/{self.key}"


class SourceBucket:
    """The bucket people upload zips into."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def stat(self, key: str) -> SourceObject | None:
        """The object's current etag and last-modified time, or None when it is gone."""
        info = _stat(self.client, self.bucket, key)
        if info is None:
            return None
        return SourceObject(
            self.bucket, key, _etag(info.etag), info.size, _naive_utc(info.last_modified)
        )

    def download(self, key: str, path: Path, etag: str | None = None) -> None:
        """Fetch the object; given `etag`, only that version (If-Match).

        The worker decides on the version `stat` showed; pinning the download keeps it
        from loading a newer upload's bytes under the older version's etag.
        """
        headers = {"If-Match": f'"{etag}"'} if etag else None
        try:
            self.client.fget_object(self.bucket, key, str(path), request_headers=headers)
        except ServerError as error:
            if error.status_code != PRECONDITION_FAILED:
                raise
            raise ObjectChanged(f"{self.bucket}/{key} is no longer version {etag}") from None
        except S3Error as error:
            if error.code != "PreconditionFailed":
                raise
            raise ObjectChanged(f"{self.bucket}/{key} is no longer version {etag}") from None

    def zips(self) -> Iterator[SourceObject]:
        """Every `.zip` object in the bucket, from one listing."""
        for item in self.client.list_objects(self.bucket, recursive=True):
            if item.is_dir or not item.object_name.lower().endswith(".zip"):
                continue
            yield SourceObject(
                self.bucket,
                item.object_name,
                _etag(item.etag),
                item.size,
                _naive_utc(item.last_modified),
            )

    def listed(self, key: str) -> SourceObject | None:
        """The object as a listing shows it, or None when it is gone.

        A listing carries the modification time with milliseconds, where `stat` (HEAD) has
        whole seconds: the finer time orders two uploads made within one second.
        """
        for item in self.client.list_objects(self.bucket, prefix=key):
            if item.object_name == key and not item.is_dir:
                return SourceObject(
                    self.bucket, key, _etag(item.etag), item.size, _naive_utc(item.last_modified)
                )
        return None

    def newest_zip(self) -> SourceObject | None:
        """The most recently modified `.zip`, the one a snapshot should reflect."""
        return max(
            self.zips(), key=lambda o: (o.last_modified or datetime.min, o.key), default=None
        )

    def upload(
        self, stream: BinaryIO, key: str, length: int, progress: object = None
    ) -> SourceObject:
        """Store a zip under `key`; MinIO's notification then turns it into a run."""
        result = self.client.put_object(
            self.bucket, key, stream, length, content_type="application/zip", progress=progress
        )
        return SourceObject(self.bucket, key, _etag(result.etag), length, None)


def ensure_buckets(client: Minio, settings: Settings) -> None:
    """Create the source and processed buckets when they are missing."""
    for bucket in (settings.source_bucket, settings.processed_bucket):
        if not client.bucket_exists(bucket):
            try:
                client.make_bucket(bucket)
            except S3Error as error:
                if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise


def _etag(value: str | None) -> str | None:
    return value.strip('"') if value else None


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)

"""The HTTP resources: parse parameters, call a named query or service, shape the response.

Nothing here builds SQL or talks to a broker directly; every dependency arrives through
`Services`, which `create_app` assembles and tests replace.
"""

import contextlib
import csv
import hmac
import io
import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from json.encoder import encode_basestring
from typing import Any
from urllib.parse import urlencode

import falcon
import peewee

from api import caching, params
from api.dependencies import Bulkhead, DependencyUnavailable, GuardedImages, GuardedSources
from shared.ages import age_between, iso_from_ymd, ymd
from shared.aggregate import UserAggregate
from shared.config import Settings, image_key
from shared.db import data_version, database
from shared.export import OUTPUT_HEADER
from shared.messages import read_json
from shared.models import Run, queue_run, utcnow
from shared.queries import (
    UserFilter,
    UserRow,
    age_histogram,
    fail_queued_run,
    get_run,
    get_user,
    iter_users,
    runs_page,
    user_stats,
    users_page,
)
from shared.storage import needs_minio

JSON_TYPE = "application/json; charset=utf-8"
CSV_TYPE = "text/csv; charset=utf-8"
STREAM_CHUNK_ROWS = 1000
RUNS_PAGE_DEFAULT = 20
RUNS_PAGE_MAX = 100
REJECTIONS_SHOWN = 100
# Characters, so that even four-byte ones stay within S3's 1024-byte key limit.
MAX_KEY_LENGTH = 256
# {"key": ...} with the longest key fits many times over.
MAX_JSON_BODY_BYTES = 16 * 1024


@dataclass(frozen=True)
class Services:
    """What the resources need from the outside world, injected by `create_app`."""

    settings: Settings
    today: Callable[[], date]
    sources: GuardedSources | None  # None without MinIO: uploads and reprocessing need it
    images: GuardedImages
    publish: Callable[[Settings, int, str], None]
    bulkhead: Bulkhead
    # The per-load stats, shared by this process's threads.
    aggregate: UserAggregate = field(default_factory=UserAggregate)


def user_json(row: UserRow, today_ymd: int) -> dict[str, Any]:
    user_id, first_name, last_name, birthts, birth_ymd, img_path = row
    return {
        "user_id": user_id,
        "first_name": first_name,
        "last_name": last_name,
        "birthts": birthts,
        "birthdate": iso_from_ymd(birth_ymd),
        "age": age_between(birth_ymd, today_ymd),
        "img_path": img_path,
    }


def _timestamp(value: datetime | None) -> str | None:
    """Stored times are naive UTC; say so on the wire."""
    return None if value is None else value.isoformat() + "Z"


def run_json(run: Run) -> dict[str, Any]:
    rejections = run.rejections
    return {
        "id": run.id,
        "status": run.status,
        "trigger": run.trigger,
        "mode": run.mode,
        "source": run.source,
        "etag": run.etag,
        "source_modified": _timestamp(run.source_modified),
        "counts": run.counts(),
        "progress": {"members_read": run.members_read, "members_total": run.members_total},
        "rejections": rejections[:REJECTIONS_SHOWN],
        "rejections_total": max(run.rejected, len(rejections)),
        "error": run.error,
        "note": run.note,
        "warnings": run.warnings,
        "queued_at": _timestamp(run.queued_at),
        "started_at": _timestamp(run.started_at),
        "finished_at": _timestamp(run.finished_at),
        "duration_seconds": run.duration_seconds,
    }


def _batches(rows: Iterable[UserRow]) -> Iterator[list[UserRow]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, STREAM_CHUNK_ROWS)):
        yield batch


def json_stream(rows: Iterable[UserRow], today: date) -> Iterator[bytes]:
    """A JSON array of `user_json` objects, one chunk per batch of rows, so no response is
    held whole in memory."""
    encode = _UserEncoder(ymd(today))
    yield b"["
    separator = ""
    for batch in _batches(rows):
        yield (separator + ", ".join(map(encode, batch))).encode()
        separator = ", "
    yield b"]"


class _UserEncoder:
    """`json.dumps(user_json(row), ensure_ascii=False)`, written out for the listings.

    A million users are a million dicts otherwise, and building and encoding them took
    three quarters of a full /data stream. Strings go through `encode_basestring`, the
    escaping json.dumps itself uses with ensure_ascii=False, and the birth date and age
    are formatted once per birthday; tests/api/test_listing_json.py checks the bytes
    against json.dumps.
    """

    def __init__(self, today_ymd: int) -> None:
        self.today_ymd = today_ymd
        self.days: dict[int, str] = {}

    def __call__(self, row: UserRow) -> str:
        user_id, first_name, last_name, birthts, birth_ymd, img_path = row
        day = self.days.get(birth_ymd)
        if day is None:
            age = age_between(birth_ymd, self.today_ymd)
            day = self.days[birth_ymd] = f'"birthdate": "{iso_from_ymd(birth_ymd)}", "age": {age}'
        image = "null" if img_path is None else encode_basestring(img_path)
        return (
            f'{{"user_id": {encode_basestring(user_id)}, "first_name": {encode_basestring(first_name)},'
            f' "last_name": {encode_basestring(last_name)}, "birthts": {birthts}, {day},'
            f' "img_path": {image}}}'
        )


def csv_stream(rows: Iterable[UserRow]) -> Iterator[bytes]:
    """The rows in the layout of the processed bucket's output.csv, header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(OUTPUT_HEADER)
    for batch in _batches(rows):
        writer.writerows((u, f, last, ts, img or "") for u, f, last, ts, _, img in batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _next_link(req: falcon.Request, resp: falcon.Response, cursor: str, value: str) -> None:
    query = {name: value for name, value in req.params.items() if name != cursor}
    query[cursor] = value
    resp.append_header("Link", f'<{req.path}?{urlencode(query, doseq=True)}>; rel="next"')


class DataResource:
    """/data: list the users (filtered, paged or streamed, JSON or CSV), or trigger a load."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params.accept_only(req, params.LISTING_PARAMETERS)
        where = params.user_filter(req)
        limit = params.whole_number(req, "limit", 1, params.MAX_PAGE)
        after = params.user_cursor(req)
        form = params.output_format(req)
        today = self.services.today()
        # The representation follows Accept when format is not given.
        resp.vary = ["Accept"]
        if caching.not_modified(req, resp, caching.data_tag(data_version(), today, form)):
            return
        resp.content_type = CSV_TYPE if form == "csv" else JSON_TYPE
        if limit is None:
            rows = iter_users(where, today, after)
            resp.stream = csv_stream(rows) if form == "csv" else json_stream(rows, today)
            return
        page, more = users_page(where, today, limit, after)
        if more:
            _next_link(req, resp, "after", page[-1][0])
        # A page is small: send it whole, with a Content-Length, so the connection stays
        # open (waitress closes it after every chunked response).
        chunks = csv_stream(page) if form == "csv" else json_stream(page, today)
        resp.data = b"".join(chunks)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_token(req, self.services.settings.api_token)
        params.accept_only(req, ())
        if self.services.sources is None:
            raise falcon.HTTPServiceUnavailable(
                title="Needs MinIO",
                description=needs_minio(self.services.settings, "POST /data"),
            )
        with self.services.bulkhead.slot():
            if req.content_type and req.content_type.split(";")[0].strip().lower() == (
                "application/zip"
            ):
                self._store_upload(req, resp)
            else:
                self._queue_reprocess(req, resp)

    def _store_upload(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Put the body into the source bucket; MinIO's notification then starts the run."""
        length = req.content_length
        if length is None:
            raise falcon.HTTPLengthRequired(description="send the zip with a Content-Length header")
        if length == 0:
            raise params.InvalidParameter("body", "is empty; send the zip as the request body")
        limit = self.services.settings.api_max_upload_bytes
        if length > limit:
            raise falcon.HTTPContentTooLarge(
                description=f"the zip is {length} bytes; the limit is {limit} (ZIPFLOW_API_MAX_UPLOAD_BYTES)"
            )
        key = f"uploads/{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.zip"
        stored = self.services.sources.upload(req.bounded_stream, key, length)
        resp.status = falcon.HTTP_202
        resp.media = {
            "bucket": stored.bucket,
            "key": stored.key,
            "etag": stored.etag,
            "size": stored.size,
            "note": "stored; the bucket notification starts a run, see /runs",
        }

    def _queue_reprocess(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Record a queued run for a zip already in the bucket and tell the worker."""
        key = _requested_key(req)
        sources = self.services.sources
        if key is None:
            target = sources.newest_zip()
            if target is None:
                raise falcon.HTTPConflict(
                    title="Nothing to reprocess",
                    description=f"bucket {sources.bucket!r} holds no .zip; upload one first",
                )
        else:
            target = sources.stat(key)
            if target is None:
                raise falcon.HTTPNotFound(
                    title="No such object",
                    description=f"bucket {sources.bucket!r} has no object {key!r}",
                )
        run = queue_run(target.label, "reprocess")
        try:
            self.services.publish(self.services.settings, run.id, target.key)
        except DependencyUnavailable as error:
            fail_queued_run(run, error.description)
            raise
        resp.status = falcon.HTTP_202
        resp.location = f"/runs/{run.id}"
        resp.media = {"run_id": run.id, "status": run.status, "source": run.source}


def _requested_key(req: falcon.Request) -> str | None:
    """The optional {"key": ...} of a reprocess request."""
    content_type = (req.content_type or "application/json").split(";")[0].strip().lower()
    if not req.content_length:
        return None
    if content_type != "application/json":
        raise falcon.HTTPUnsupportedMediaType(
            description='send {"key": "..."} as application/json, or a zip as application/zip'
        )
    body = _json_body(req)
    if not isinstance(body, dict):
        raise params.InvalidParameter("body", 'must be a JSON object like {"key": "archive.zip"}')
    unknown = sorted(set(body) - {"key"})
    if unknown:
        raise params.InvalidParameter(unknown[0], 'is not a field of this request; only "key" is')
    if "key" not in body:
        return None
    key = body["key"]
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not params.is_plain_text(key):
        raise params.InvalidParameter(
            "key",
            f"must be an object key of 1 to {MAX_KEY_LENGTH} characters, none of them control characters",
        )
    return key


def _json_body(req: falcon.Request) -> Any:
    """The body parsed as JSON, if it is small enough to be a request rather than an attack.

    Parsed here, not with `req.get_media()`: Falcon picks its media handler by the
    Content-Type as sent, so "Application/JSON" would be a 415, while media types are
    case-insensitive.
    """
    if req.content_length > MAX_JSON_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(
            description=f"a JSON request body holds at most {MAX_JSON_BODY_BYTES} bytes"
        )
    try:
        return read_json(req.bounded_stream.read())
    except ValueError:
        raise params.InvalidParameter("body", "is not valid JSON") from None


def require_token(req: falcon.Request, token: str) -> None:
    """Writes need `Authorization: Bearer <ZIPFLOW_API_TOKEN>` when a token is configured."""
    if not token:
        return
    scheme, _, given = (req.auth or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.encode()
    ):
        raise falcon.HTTPUnauthorized(
            title="Token required",
            description="send Authorization: Bearer <ZIPFLOW_API_TOKEN>",
            challenges=["Bearer"],
        )


def _user_or_404(user_id: str) -> UserRow:
    row = get_user(user_id) if params.looks_like_user_id(user_id) else None
    if row is None:
        raise falcon.HTTPNotFound(description=f"no user {user_id!r}")
    return row


class UserResource:
    """/data/{user_id}: one user."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        params.accept_only(req, ())
        today = self.services.today()
        tag = caching.data_tag(data_version(), today)
        if caching.names(req, tag):
            # The client has this user at the current version: no need to read the row.
            caching.not_modified(req, resp, tag)
            return
        row = _user_or_404(user_id)
        if caching.not_modified(req, resp, tag):
            return
        resp.media = user_json(row, ymd(today))


class UserImageResource:
    """/data/{user_id}/image: the processed png."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        params.accept_only(req, ())
        row = _user_or_404(user_id)
        data = None
        if row[-1]:
            with self.services.bulkhead.slot():
                data = self.services.images.get(image_key(user_id))
        if data is None:
            raise falcon.HTTPNotFound(description=f"user {user_id!r} has no image")
        resp.content_type = "image/png"
        resp.data = data


class StatsResource:
    """/stats: count, mean age and image split of the users the filters select."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params.accept_only(req, params.FILTER_PARAMETERS)
        where = params.user_filter(req)
        today, version = self.services.today(), data_version()
        if caching.not_modified(req, resp, caching.data_tag(version, today)):
            return
        stats = user_stats(where, today, self.services.aggregate, version)
        resp.media = {
            "count": stats.count,
            "average_age": stats.average_age,
            "with_image": stats.with_image,
            "without_image": stats.without_image,
            "filters": filters_json(where),
        }


class StatsAgesResource:
    """/stats/ages: how many of the selected users have each completed year of age."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params.accept_only(req, params.FILTER_PARAMETERS)
        where = params.user_filter(req)
        today, version = self.services.today(), data_version()
        if caching.not_modified(req, resp, caching.data_tag(version, today)):
            return
        ages = age_histogram(where, today, self.services.aggregate, version)
        resp.media = {
            "filters": filters_json(where),
            "ages": [
                {"age": row.age, "count": row.count, "with_image": row.with_image} for row in ages
            ],
        }


def filters_json(where: UserFilter) -> dict[str, Any]:
    """The filters a statistic was computed for, echoed so a reader knows what it covers."""
    return {
        "is_image_exists": where.has_image,
        "min_age": where.min_age,
        "max_age": where.max_age,
        "q": where.search,
    }


class RunsResource:
    """/runs: processing runs, newest first, paged with `before`."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params.accept_only(req, params.RUNS_PARAMETERS)
        limit = params.whole_number(req, "limit", 1, RUNS_PAGE_MAX) or RUNS_PAGE_DEFAULT
        before = params.whole_number(req, "before", 1, params.MAX_RUN_ID)
        runs, more = runs_page(limit, before)
        if more:
            _next_link(req, resp, "before", str(runs[-1].id))
        resp.media = [run_json(run) for run in runs]


class RunResource:
    """/runs/{run_id}: one run."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, run_id: int) -> None:
        params.accept_only(req, ())
        run = get_run(run_id)
        if run is None:
            raise falcon.HTTPNotFound(description=f"no run {run_id}")
        body = json.dumps(run_json(run), ensure_ascii=False).encode()
        if caching.not_modified(req, resp, caching.content_tag(body)):
            return
        resp.content_type = JSON_TYPE
        resp.data = body


class HealthResource:
    """/health: the process is up and serving."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params.accept_only(req, ())
        resp.media = {"status": "ok"}


def close_broken_connection() -> None:
    """Drop this thread's connection after a failure so the next request opens a fresh one."""
    with contextlib.suppress(peewee.PeeweeException):
        database.close()


class OpenApiResource:
    """/openapi.json: the document describing this API."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.body = json.dumps(document, ensure_ascii=False).encode()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params.accept_only(req, ())
        resp.content_type = JSON_TYPE
        resp.data = self.body

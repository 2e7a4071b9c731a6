"""`create_app`: the API's wiring, with every outside dependency passed in or built from settings.

Tests call `create_app` with their own clock, buckets and publisher; nothing is patched.
The caller binds the store (`shared.db.open_database`) before serving.
"""

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import falcon
import peewee
import urllib3.exceptions
from minio.error import MinioException

from api import resources
from api.head import HeadAsGet
from api.openapi import DOCUMENT
from shared.ages import utc_today
from shared.config import Settings
from shared.messages import publish_reprocess
from shared.storage import LocalStore, MinioStore, ProcessedStore, SourceBucket, minio_client


def create_app(
    settings: Settings,
    *,
    today: Callable[[], date] = utc_today,
    sources: SourceBucket | None = None,
    images: ProcessedStore | None = None,
    publish: Callable[[Settings, int, str], None] = publish_reprocess,
) -> falcon.App:
    """The Falcon app; buckets default to MinIO clients built from `settings`, or without
    MinIO to the local directory for images and no source bucket (POST /data is a 503)."""
    if settings.uses_minio and (sources is None or images is None):
        client = minio_client(settings)
        sources = sources or SourceBucket(client, settings.source_bucket)
        images = images or MinioStore(client, settings.processed_bucket)
    images = images or LocalStore(settings.data_dir, settings.processed_bucket)
    services = resources.Services(
        settings=settings, today=today, sources=sources, images=images, publish=publish
    )

    app = falcon.App(media_type=resources.JSON_TYPE, middleware=[HeadAsGet()])
    # "min_age=" must reach the parser and be refused, not vanish as if absent.
    app.req_options.keep_blank_qs_values = True
    app.set_error_serializer(serialize_error)
    app.add_error_handler(peewee.PeeweeException, store_unavailable)
    app.add_error_handler(MinioException, object_storage_unavailable)
    app.add_error_handler(urllib3.exceptions.HTTPError, object_storage_unavailable)

    app.add_route("/data", resources.DataResource(services))
    app.add_route("/data/{user_id}", resources.UserResource(services))
    app.add_route("/data/{user_id}/image", resources.UserImageResource(services))
    app.add_route("/stats", resources.StatsResource(services))
    app.add_route("/stats/ages", resources.StatsAgesResource(services))
    app.add_route("/runs", resources.RunsResource())
    app.add_route("/runs/{run_id:int(min=1, max=2147483647)}", resources.RunResource())
    app.add_route("/health", resources.HealthResource())
    app.add_route("/ready", resources.ReadyResource())
    app.add_route("/openapi.json", resources.OpenApiResource(DOCUMENT))
    return app


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Every error is JSON, whatever the client accepts, so scripts can always parse it."""
    resp.content_type = resources.JSON_TYPE
    resp.data = json.dumps(error.to_dict(), ensure_ascii=False).encode()


def _unavailable(resp: falcon.Response, title: str, error: Exception) -> None:
    resp.status = falcon.HTTP_503
    resp.content_type = resources.JSON_TYPE
    resp.stream = None
    resp.data = json.dumps(
        {"title": title, "description": " ".join(str(error).split())}, ensure_ascii=False
    ).encode()


def store_unavailable(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """The database failed: say so with a 503 and reconnect on the next request."""
    resources.close_broken_connection()
    _unavailable(resp, "Store unavailable", error)


def object_storage_unavailable(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """MinIO failed or cannot be reached: a 503, since retrying later may work."""
    _unavailable(resp, "Object storage unavailable", error)

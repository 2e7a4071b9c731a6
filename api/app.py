"""`create_app`: the API's wiring, with every outside dependency passed in or built from settings.

Tests call `create_app` with their own clock, buckets and publisher; nothing is patched.
The caller binds the store (`shared.db.open_database`) before serving.
"""

import functools
import json
from collections.abc import Callable
from datetime import date
from typing import Any

import falcon
import peewee

from api import resources
from api.access import OPEN_ROUTES, ReadTokenMiddleware, SecurityHeaders
from api.console.pages import add_console
from api.dependencies import (
    OBJECT_STORAGE_FAILURES,
    Bulkhead,
    Dependency,
    DependencyUnavailable,
    GuardedImages,
    GuardedSources,
)
from api.head import HeadAsGet
from api.metrics import ApiMetrics, MetricsMiddleware, MetricsResource
from api.openapi import DOCUMENT
from api.readiness import (
    Check,
    ReadyResource,
    broker_address,
    broker_probe,
    check_store,
    directory_probe,
    object_storage_probe,
    store_address,
)
from shared.ages import utc_today
from shared.config import Settings
from shared.messages import PublishError, publish_reprocess
from shared.storage import (
    LocalStore,
    MinioStore,
    ProcessedStore,
    SourceBucket,
    minio_client,
    quick_http_client,
)


def create_app(
    settings: Settings,
    *,
    today: Callable[[], date] = utc_today,
    sources: SourceBucket | None = None,
    images: ProcessedStore | None = None,
    publish: Callable[[Settings, int, str], None] = publish_reprocess,
) -> falcon.App:
    """The Falcon app; buckets default to MinIO clients built from `settings`, or without
    MinIO to the local directory for images and no source bucket (POST /data is a 503).

    Every MinIO client the API uses gives up within about a second (`quick_http_client`):
    someone is waiting on each request.
    """
    client = minio_client(settings, quick_http_client()) if settings.uses_minio else None
    if client is not None:
        sources = sources or SourceBucket(client, settings.source_bucket)
        images = images or MinioStore(client, settings.processed_bucket)
    images = images or LocalStore(settings.data_dir, settings.processed_bucket)
    object_storage = Dependency(
        "object storage",
        settings.s3_endpoint if settings.uses_minio else str(settings.data_dir),
        "images and uploads are unavailable, reads still work",
        OBJECT_STORAGE_FAILURES,
    )
    broker = Dependency(
        "message broker",
        broker_address(settings.amqp_url),
        "runs cannot be queued, reads still work",
        (PublishError,),
    )
    services = resources.Services(
        settings=settings,
        today=today,
        sources=None if sources is None else GuardedSources(sources, object_storage),
        images=GuardedImages(images, object_storage),
        publish=functools.partial(broker.call, publish),
        # Requests waiting on MinIO or RabbitMQ may hold half of the threads, never all.
        bulkhead=Bulkhead(settings.api_threads // 2),
    )
    metrics = ApiMetrics()

    read_token = ReadTokenMiddleware(settings.api_read_token, settings.api_token, OPEN_ROUTES)
    middleware = [MetricsMiddleware(metrics), HeadAsGet(), SecurityHeaders(), read_token]
    app = falcon.App(media_type=resources.JSON_TYPE, middleware=middleware)
    # "min_age=" must reach the parser and be refused, not vanish as if absent.
    app.req_options.keep_blank_qs_values = True
    app.set_error_serializer(serialize_error)
    app.add_error_handler(peewee.PeeweeException, store_unavailable)
    app.add_error_handler(DependencyUnavailable, dependency_unavailable)

    app.add_route("/data", resources.DataResource(services))
    app.add_route("/data/{user_id}", resources.UserResource(services))
    app.add_route("/data/{user_id}/image", resources.UserImageResource(services))
    app.add_route("/stats", resources.StatsResource(services))
    app.add_route("/stats/ages", resources.StatsAgesResource(services))
    app.add_route("/runs", resources.RunsResource())
    app.add_route("/runs/{run_id:int(min=1, max=2147483647)}", resources.RunResource())
    app.add_route("/health", resources.HealthResource())
    store = Check("store", store_address(settings.database_url), check_store)
    if client is None:
        # Without MinIO nothing is published either: POST /data is off.
        checks = [
            store,
            Check("broker", broker.address, None),
            Check("object_storage", object_storage.address, directory_probe(settings.data_dir)),
        ]
    else:
        checks = [
            store,
            Check("broker", broker.address, broker_probe(settings)),
            Check(
                "object_storage",
                settings.s3_endpoint,
                object_storage_probe(client, settings.source_bucket),
            ),
        ]
    app.add_route("/ready", ReadyResource(checks))
    app.add_route("/metrics", MetricsResource(metrics))
    app.add_route("/openapi.json", resources.OpenApiResource(DOCUMENT))
    read_token.open_routes |= add_console(app, settings, DOCUMENT)
    return app


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Every error is JSON, whatever the client accepts, so scripts can always parse it."""
    resp.content_type = resources.JSON_TYPE
    resp.data = json.dumps(error.to_dict(), ensure_ascii=False).encode()


def _unavailable(resp: falcon.Response, title: str, description: str) -> None:
    resp.status = falcon.HTTP_503
    resp.content_type = resources.JSON_TYPE
    resp.stream = None
    resp.set_header("Retry-After", "5")
    resp.data = json.dumps(
        {"title": title, "description": description}, ensure_ascii=False
    ).encode()


def store_unavailable(
    req: falcon.Request, resp: falcon.Response, error: Exception, params: dict[str, Any]
) -> None:
    """The database failed: say so with a 503 and reconnect on the next request."""
    resources.close_broken_connection()
    _unavailable(resp, "Store unavailable", " ".join(str(error).split()))


def dependency_unavailable(
    req: falcon.Request, resp: falcon.Response, error: DependencyUnavailable, params: dict[str, Any]
) -> None:
    """MinIO or RabbitMQ failed, or too many requests wait on them: a 503, since later may work."""
    _unavailable(resp, error.title, error.description)

"""What every long-running process says once at start: the store, the object store and the
broker it uses. Two processes that disagree about the data usually disagree about one of
these (a SQLite path relative to another folder, another MinIO), and this shows it."""

import logging

from shared.config import Settings, masked, store_label
from shared.storage import object_store_label


def log_connections(log: logging.Logger, settings: Settings) -> None:
    log.info("store: %s", store_label(settings.database_url))
    if settings.uses_minio:
        log.info("object store: %s", object_store_label(settings))
    else:
        log.info(
            "object store: %s (no MinIO: ZIPFLOW_S3_ACCESS_KEY is not set, or"
            " ZIPFLOW_STORAGE=local)",
            object_store_label(settings),
        )
    log.info("broker: %s", masked(settings.amqp_url))

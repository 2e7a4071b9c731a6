"""The one place where zipflow reads its environment.

Every process (worker, API, command line) builds a `Settings` once at start and passes
it, or the parts it needs, down as arguments. Nothing else reads `os.environ`.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

MODES = ("snapshot", "merge")
# auto: MinIO when its access key is configured, else the local directory.
STORAGES = ("auto", "local", "minio")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
LOG_FORMATS = ("text", "json")


class ConfigError(ValueError):
    """A ZIPFLOW_* variable holds a value zipflow cannot use."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what an uploaded archive may hold, so a hostile zip cannot exhaust the host."""

    max_archive_bytes: int = 2 * 1024**3
    max_total_bytes: int = 4 * 1024**3
    max_members: int = 3_000_000
    max_member_bytes: int = 32 * 1024**2
    max_ratio: int = 200


@dataclass(frozen=True)
class Settings:
    """All configuration, with development defaults that suit a laptop and nothing more."""

    database_url: str = "sqlite:///data/zipflow.db"
    mode: str = "snapshot"
    data_dir: Path = Path("data")
    storage: str = "auto"
    limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    # Processes that read a large archive together (see shared.reading); 1 reads it alone.
    read_processes: int = 2

    s3_endpoint: str = "localhost:9000"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_secure: bool = False
    source_bucket: str = "source"
    processed_bucket: str = "processed"
    image_upload_threads: int = 8

    amqp_url: str = "amqp://guest:guest@localhost:5672/%2F"
    exchange: str = "minio-events"
    exchange_type: str = "fanout"
    exchange_durable: bool = True
    # MinIO publishes with MINIO_NOTIFY_AMQP_ROUTING_KEY (empty unless set); the work queue
    # is bound with the same key, so direct and topic exchanges route its events too.
    routing_key: str = ""
    queue: str = "zipflow.objects"
    dead_letter: str = "zipflow.dead"
    max_deliveries: int = 5
    reconcile_seconds: int = 300

    api_token: str = ""
    api_read_token: str = ""
    api_threads: int = 8
    api_max_upload_bytes: int = 512 * 1024**2
    # On PostgreSQL, how long one API query may run before the server cancels it; 0: no limit.
    api_statement_timeout_seconds: int = 10

    log_format: str = "text"
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9101

    # Where the console links to; empty means no link.
    rabbitmq_management_url: str = ""
    minio_console_url: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from ZIPFLOW_* variables; unknown ones are ignored, bad ones raise."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name == "limits":
                continue
            raw = env.get(f"ZIPFLOW_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _convert(f.name, raw, type(getattr(cls(), f.name)))
        limit_values = {}
        for f in fields(ArchiveLimits):
            raw = env.get(f"ZIPFLOW_{f.name.upper()}")
            if raw is not None:
                limit_values[f.name] = _convert(f.name, raw, int)
        settings = cls(**values, limits=replace(ArchiveLimits(), **limit_values))
        if settings.mode not in MODES:
            raise ConfigError(
                f"ZIPFLOW_MODE must be one of {', '.join(MODES)}, not {settings.mode!r}"
            )
        if settings.storage not in STORAGES:
            raise ConfigError(
                f"ZIPFLOW_STORAGE must be one of {', '.join(STORAGES)}, not {settings.storage!r}"
            )
        _check_database_url(settings.database_url)
        _check_amqp_url(settings.amqp_url)
        _check_s3_endpoint(settings.s3_endpoint)
        if settings.log_format not in LOG_FORMATS:
            raise ConfigError(
                f"ZIPFLOW_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
                f"not {settings.log_format!r}"
            )
        if settings.read_processes < 1:
            raise ConfigError(
                "ZIPFLOW_READ_PROCESSES must be at least 1 (1 reads an archive in one process),"
                f" not {settings.read_processes}"
            )
        if settings.worker_metrics_port > 65535:
            raise ConfigError(
                "ZIPFLOW_WORKER_METRICS_PORT must be a port number (0 turns the endpoint off), "
                f"not {settings.worker_metrics_port}"
            )
        for name in ("rabbitmq_management_url", "minio_console_url"):
            url = getattr(settings, name)
            if url and not url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"ZIPFLOW_{name.upper()} must be an http:// or https:// URL, not {url!r}"
                )
        return settings

    @property
    def uses_minio(self) -> bool:
        """Whether images, output.csv and source zips live in MinIO or in `data_dir`."""
        if self.storage == "auto":
            return bool(self.s3_access_key)
        return self.storage == "minio"

    def image_path(self, user_id: str) -> str:
        """The bucket/key of a user's processed image, as stored in the user row and served."""
        return f"{self.processed_bucket}/{image_key(user_id)}"


def image_key(user_id: str) -> str:
    """The object key of a user's image inside the processed bucket."""
    return f"images/{user_id}.png"


OUTPUT_KEY = "output.csv"


def masked(url: str) -> str:
    """A URL as logs and messages show it: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def store_label(url: str) -> str:
    """The store as summaries and start-up logs show it: a SQLite file with its full path
    (the URL is relative to the current folder), a server URL with its password masked."""
    if url.startswith("sqlite:///"):
        return f"the SQLite store {Path(url.removeprefix('sqlite:///')).resolve()}"
    return f"the store {masked(url)}"


def _check_database_url(url: str) -> None:
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in DATABASE_SCHEMES or not rest:
        raise ConfigError(
            f"ZIPFLOW_DATABASE_URL {masked(url)!r} is not a store zipflow can use: give"
            " sqlite:///relative/path.db, sqlite:////absolute/path.db or"
            " postgresql://user:password@host:5432/database"
        )


def _check_amqp_url(url: str) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        parts = parts._replace(scheme="")
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ConfigError(
            f"ZIPFLOW_AMQP_URL {masked(url)!r} is not a RabbitMQ URL: give"
            " amqp://user:password@host:5672/%2F"
        )


def _check_s3_endpoint(endpoint: str) -> None:
    host, _, port = endpoint.rpartition(":") if ":" in endpoint else (endpoint, "", "")
    if "/" in endpoint or not host or (port and not port.isdigit()):
        raise ConfigError(
            f"ZIPFLOW_S3_ENDPOINT must be host or host:port, such as localhost:9000, not"
            f" {endpoint!r} (no http://: ZIPFLOW_S3_SECURE=true selects HTTPS)"
        )


def _convert(name: str, raw: str, kind: type) -> object:
    variable = f"ZIPFLOW_{name.upper()}"
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{variable} must be true or false, not {raw!r}")
    if kind is int:
        try:
            number = int(raw)
        except ValueError:
            raise ConfigError(f"{variable} must be a whole number, not {raw!r}") from None
        if number < 0:
            raise ConfigError(f"{variable} must not be negative, not {raw!r}")
        return number
    if issubclass(kind, Path):
        return Path(raw)
    return raw

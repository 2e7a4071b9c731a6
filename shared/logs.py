"""How every zipflow process writes its log: readable lines, or one JSON object per line.

`ZIPFLOW_LOG_FORMAT=json` is for log collectors: each record becomes an object with `time`
(ISO 8601, UTC), `level`, `logger` and `message`, plus whatever the call site passed as
`extra` (the worker passes the event's `key` and `etag`, the `run_id`, the `outcome` and
the `duration` in seconds), so a collector can filter on them without parsing text.
"""

import logging

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_format: str, text_format: str = TEXT_FORMAT) -> None:
    """Send INFO and above to stderr in the configured format, unless logging is set up already."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        json_formatter() if log_format == "json" else logging.Formatter(text_format)
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def json_formatter() -> logging.Formatter:
    """One JSON object per record: time, level, logger, message and the record's extras."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )

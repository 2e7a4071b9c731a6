"""The OpenAPI 3.1 document served at /openapi.json.

Written by hand beside the resources it describes; tests/api/test_openapi.py keeps the two
in step (routes, methods, parameters and response bodies) and runs schemathesis against it.
"""

from typing import Any

from api.params import MAX_AGE, MAX_PAGE, MAX_RUN_ID, MAX_SEARCH_LENGTH, PLAIN_TEXT
from api.resources import MAX_KEY_LENGTH, RUNS_PAGE_DEFAULT, RUNS_PAGE_MAX
from shared.models import MAX_USER_ID_LENGTH, RUN_STATUSES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "ETags of copies you hold; when one is current the answer is a 304.",
}
CACHE_HEADERS = {
    "ETag": {
        "description": "Changes when a load changes the users, at the UTC day's turn, and"
        " (for a run) whenever the run does.",
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "no-cache: keep the answer, revalidate it before use.",
        "schema": {"type": "string"},
    },
}
NOT_MODIFIED = {
    "description": "The copy named in If-None-Match is current; no body.",
    "headers": CACHE_HEADERS,
}


def _tagged(response: dict[str, Any]) -> dict[str, Any]:
    """A response that carries an ETag and the revalidation policy."""
    return {**response, "headers": {**response.get("headers", {}), **CACHE_HEADERS}}


NEXT_LINK = {
    "Link": {
        "description": 'Present when more remain: `<...>; rel="next"` points at the next page.',
        "schema": {"type": "string"},
    }
}
UNAVAILABLE = _error(
    "The store, object storage or the broker does not answer, or too many requests already "
    "wait on them; the description names which and what still works. Retry later."
)
BAD_PARAMETER = _error(
    "A parameter is invalid, or is not one this endpoint takes; `parameter` names it."
)
# Every endpoint refuses query parameters it does not list, these included.
NO_PARAMETERS = _error(
    "A query parameter was given; this endpoint takes none. `parameter` names it."
)
USER_ID = {
    "name": "user_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "A user id as it appears in the archive's file names.",
}
FILTERS = [
    _query(
        "is_image_exists",
        {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|0)$"},
        "true/false (any case) or 1/0: only users with, or without, an image.",
    ),
    _query(
        "min_age",
        {"type": "integer", "minimum": 0, "maximum": MAX_AGE},
        "Youngest age included, in completed years today (UTC).",
    ),
    _query(
        "max_age",
        {"type": "integer", "minimum": 0, "maximum": MAX_AGE},
        "Oldest age included; not below min_age.",
    ),
    _query(
        "q",
        {"type": "string", "minLength": 1, "maxLength": MAX_SEARCH_LENGTH, "pattern": PLAIN_TEXT},
        "Search: users whose user_id starts with this text, or whose first or last name"
        " contains it, ignoring case. `%` and `_` match themselves.",
    ),
]
PAGING = [
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        "Page size. Without it every matching user is streamed.",
    ),
    _query(
        "after",
        {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_LENGTH, "pattern": PLAIN_TEXT},
        "Only users after this user_id: the last one of the previous page.",
    ),
    _query("format", {"type": "string", "enum": ["json", "csv"]}, "Overrides the Accept header."),
]

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["title"],
        "properties": {
            "title": {"type": "string"},
            "description": {"type": "string"},
            "parameter": {
                "type": "string",
                "description": "The query parameter or body field at fault.",
            },
        },
    },
    "User": {
        "type": "object",
        "required": [
            "user_id",
            "first_name",
            "last_name",
            "birthts",
            "birthdate",
            "age",
            "img_path",
        ],
        "additionalProperties": False,
        "properties": {
            "user_id": {"type": "string"},
            "first_name": {"type": "string"},
            "last_name": {"type": "string"},
            "birthts": {"type": "integer", "description": "Birth time, ms since the epoch, UTC."},
            "birthdate": {"type": "string", "format": "date"},
            "age": {"type": "integer", "description": "Completed years today (UTC)."},
            "img_path": {
                "type": ["string", "null"],
                "description": "bucket/key of the png, or null.",
            },
        },
    },
    "Stats": {
        "type": "object",
        "required": ["count", "average_age", "with_image", "without_image", "filters"],
        "additionalProperties": False,
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "average_age": {
                "type": ["number", "null"],
                "description": "Two decimals; null when none match.",
            },
            "with_image": {"type": "integer", "minimum": 0},
            "without_image": {"type": "integer", "minimum": 0},
            "filters": _ref("Filters"),
        },
    },
    "Filters": {
        "type": "object",
        "description": "The filters applied; null where a parameter was absent.",
        "required": ["is_image_exists", "min_age", "max_age", "q"],
        "additionalProperties": False,
        "properties": {
            "is_image_exists": {"type": ["boolean", "null"]},
            "min_age": {"type": ["integer", "null"]},
            "max_age": {"type": ["integer", "null"]},
            "q": {"type": ["string", "null"]},
        },
    },
    "AgeHistogram": {
        "type": "object",
        "required": ["filters", "ages"],
        "additionalProperties": False,
        "properties": {
            "filters": _ref("Filters"),
            "ages": {
                "type": "array",
                "description": "One entry per completed year of age that has users, youngest first.",
                "items": {
                    "type": "object",
                    "required": ["age", "count", "with_image"],
                    "additionalProperties": False,
                    "properties": {
                        "age": {"type": "integer", "minimum": 0},
                        "count": {"type": "integer", "minimum": 1},
                        "with_image": {"type": "integer", "minimum": 0},
                    },
                },
            },
        },
    },
    "Run": {
        "type": "object",
        "required": [
            "id",
            "status",
            "trigger",
            "source",
            "counts",
            "progress",
            "rejections",
            "rejections_total",
        ],
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": list(RUN_STATUSES)},
            "trigger": {"type": "string"},
            "mode": {"type": "string"},
            "source": {"type": "string", "description": "bucket/key of the archive."},
            "etag": {"type": ["string", "null"]},
            "source_modified": {"type": ["string", "null"], "format": "date-time"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "progress": {
                "type": "object",
                "required": ["members_read", "members_total"],
                "properties": {
                    "members_read": {"type": "integer"},
                    "members_total": {"type": "integer"},
                },
            },
            "rejections": {
                "type": "array",
                "maxItems": 100,
                "items": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
            },
            "rejections_total": {"type": "integer"},
            "error": {"type": ["string", "null"]},
            "note": {"type": ["string", "null"]},
            "warnings": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Steps that failed after the load committed (writing output.csv,"
                " deleting old images): the run succeeded and the store holds its data.",
            },
            "queued_at": {"type": ["string", "null"], "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "duration_seconds": {"type": ["number", "null"]},
        },
    },
    "ReprocessAccepted": {
        "type": "object",
        "required": ["run_id", "status", "source"],
        "properties": {
            "run_id": {"type": "integer"},
            "status": {"type": "string", "enum": ["queued"]},
            "source": {"type": "string"},
        },
    },
    "UploadAccepted": {
        "type": "object",
        "required": ["bucket", "key", "size"],
        "properties": {
            "bucket": {"type": "string"},
            "key": {"type": "string"},
            "etag": {"type": ["string", "null"]},
            "size": {"type": "integer"},
            "note": {"type": "string"},
        },
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "degraded", "unavailable"]},
            "checks": {
                "type": "object",
                "required": ["store", "broker", "object_storage"],
                "additionalProperties": _ref("Check"),
            },
        },
    },
    "Check": {
        "type": "object",
        "required": ["status", "ms"],
        "properties": {
            "status": {
                "type": "string",
                "enum": ["ok", "unreachable", "timeout", "missing", "failed", "unused"],
            },
            "detail": {"type": "string", "description": "Why, when not ok."},
            "ms": {"type": "integer", "minimum": 0, "description": "Time the check took."},
        },
    },
}

PATHS: dict[str, Any] = {
    "/data": {
        "get": {
            "summary": "List users, filtered; paged with limit/after or streamed whole; JSON or CSV.",
            "parameters": [*FILTERS, *PAGING, IF_NONE_MATCH],
            "responses": {
                "304": NOT_MODIFIED,
                "200": {
                    "description": "The users in user_id order.",
                    "headers": {**NEXT_LINK, **CACHE_HEADERS},
                    "content": {
                        "application/json": {"schema": {"type": "array", "items": _ref("User")}},
                        "text/csv": {
                            "schema": {
                                "type": "string",
                                "description": "Header user_id,first_name,last_name,birthts,img_path.",
                            }
                        },
                    },
                },
                "400": BAD_PARAMETER,
                "503": UNAVAILABLE,
            },
        },
        "post": {
            "summary": "Reprocess the newest zip (or body.key), or store a zip sent as the body.",
            "security": [{"bearer": []}, {}],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "key": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": MAX_KEY_LENGTH,
                                    "pattern": PLAIN_TEXT,
                                }
                            },
                        }
                    },
                    "application/zip": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": {
                "202": {
                    "description": "A run was queued (JSON body), or the zip was stored (zip body).",
                    "headers": {
                        "Location": {
                            "description": "/runs/{id} of the queued run.",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {
                        "application/json": {
                            "schema": {"oneOf": [_ref("ReprocessAccepted"), _ref("UploadAccepted")]}
                        }
                    },
                },
                "400": _error(
                    "The body is not what this endpoint takes, or a query parameter was given "
                    "(it takes none); `parameter` names the part."
                ),
                "401": _error("ZIPFLOW_API_TOKEN is set and the bearer token is missing or wrong."),
                "404": _error("body.key names no object in the source bucket."),
                "409": _error("The source bucket holds no zip to reprocess."),
                "411": _error("A zip body needs a Content-Length."),
                "413": _error(
                    "The zip is larger than ZIPFLOW_API_MAX_UPLOAD_BYTES, or a JSON body is over"
                    " 16 KiB."
                ),
                "415": _error("The body is neither application/json nor application/zip."),
                "503": _error(
                    "The broker, the store or object storage does not answer; nothing was queued."
                ),
            },
        },
    },
    "/data/{user_id}": {
        "get": {
            "summary": "One user.",
            "parameters": [USER_ID, IF_NONE_MATCH],
            "responses": {
                "200": _tagged(_json(_ref("User"), "The user.")),
                "304": NOT_MODIFIED,
                "400": NO_PARAMETERS,
                "404": _error("No such user."),
                "503": UNAVAILABLE,
            },
        }
    },
    "/data/{user_id}/image": {
        "get": {
            "summary": "The user's processed png.",
            "parameters": [USER_ID],
            "responses": {
                "200": {
                    "description": "The png bytes.",
                    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                },
                "400": NO_PARAMETERS,
                "404": _error("No such user, or the user has no image."),
                "503": UNAVAILABLE,
            },
        }
    },
    "/stats": {
        "get": {
            "summary": "Count, average age and image split of the users the filters select.",
            "parameters": [*FILTERS, IF_NONE_MATCH],
            "responses": {
                "200": _tagged(_json(_ref("Stats"), "The figures, and the filters applied.")),
                "304": NOT_MODIFIED,
                "400": BAD_PARAMETER,
                "503": UNAVAILABLE,
            },
        }
    },
    "/stats/ages": {
        "get": {
            "summary": "Users per completed year of age, and how many of them have an image.",
            "parameters": [*FILTERS, IF_NONE_MATCH],
            "responses": {
                "200": _tagged(_json(_ref("AgeHistogram"), "The ages, and the filters applied.")),
                "304": NOT_MODIFIED,
                "400": BAD_PARAMETER,
                "503": UNAVAILABLE,
            },
        }
    },
    "/runs": {
        "get": {
            "summary": "Processing runs, newest first.",
            "parameters": [
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": RUNS_PAGE_MAX},
                    f"Page size, {RUNS_PAGE_DEFAULT} when absent.",
                ),
                _query(
                    "before",
                    {"type": "integer", "minimum": 1, "maximum": MAX_RUN_ID},
                    "Only runs with a smaller id: the last id of the previous page.",
                ),
            ],
            "responses": {
                "200": {
                    "description": "The runs.",
                    "headers": NEXT_LINK,
                    "content": {
                        "application/json": {"schema": {"type": "array", "items": _ref("Run")}}
                    },
                },
                "400": BAD_PARAMETER,
                "503": UNAVAILABLE,
            },
        }
    },
    "/runs/{run_id}": {
        "get": {
            "summary": "One run: status, counts, progress, the first 100 rejections, error, timings.",
            "parameters": [
                {
                    "name": "run_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RUN_ID},
                },
                IF_NONE_MATCH,
            ],
            "responses": {
                "200": _tagged(_json(_ref("Run"), "The run.")),
                "304": NOT_MODIFIED,
                "400": NO_PARAMETERS,
                "404": _error("No such run."),
                "503": UNAVAILABLE,
            },
        }
    },
    "/health": {
        "get": {
            "summary": "The process is up.",
            "responses": {
                "200": _json(_ref("Status"), "Always ok while the process serves."),
                "400": NO_PARAMETERS,
            },
        }
    },
    "/ready": {
        "get": {
            "summary": "Whether the store, the broker and object storage answer, each within 1 s.",
            "responses": {
                "200": _json(
                    _ref("Readiness"),
                    "The store answers, so reads work: `ready` when everything does, "
                    "`degraded` when the broker or object storage does not (images, uploads "
                    "or reprocessing then fail with a 503).",
                ),
                "400": NO_PARAMETERS,
                "503": _json(_ref("Readiness"), "The store does not answer: `unavailable`."),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics: requests, durations, requests in flight, users.",
            "responses": {
                "200": {
                    "description": "The Prometheus text format (OpenMetrics when asked for).",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "400": NO_PARAMETERS,
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document.",
            "responses": {
                "200": _json({"type": "object"}, "The OpenAPI 3.1 document."),
                "400": NO_PARAMETERS,
            },
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "zipflow",
        "version": "0.1.0",
        "description": "Users loaded from zips dropped into MinIO, their stats, and the processing runs.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "ZIPFLOW_API_TOKEN; required by POST when the variable is set.",
            }
        },
    },
}

"""Query parameters: parsed strictly, so a bad one is a 400 that names it, never a guess.

/data and /stats share the filter parameters; paging and format belong to listings. Every
responder first calls `accept_only` with the parameters it takes, so an unknown one is a
400 too.
"""

import re

import falcon

from shared.models import MAX_USER_ID_LENGTH
from shared.queries import UserFilter

MAX_AGE = 150
MAX_PAGE = 1000
MAX_RUN_ID = 2**31 - 1
# Names hold at most 200 characters, so a longer search text matches nobody.
MAX_SEARCH_LENGTH = 200
TRUE_WORDS = ("true", "1")
FALSE_WORDS = ("false", "0")
FORMATS = ("json", "csv")
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,12}")
# Text without control characters; the OpenAPI document publishes the same pattern.
PLAIN_TEXT = r"^[^\u0000-\u001f\u007f-\u009f]+$"
FILTER_PARAMETERS = ("is_image_exists", "min_age", "max_age", "q")
LISTING_PARAMETERS = (*FILTER_PARAMETERS, "limit", "after", "format")
RUNS_PARAMETERS = ("limit", "before")


class InvalidParameter(falcon.HTTPBadRequest):
    """A 400 whose JSON body carries the parameter's name, for clients to point at it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(title="Invalid parameter", description=f"{name}: {problem}")
        self.parameter = name

    def to_dict(self, obj_type: type = dict) -> dict:
        body = super().to_dict(obj_type)
        body["parameter"] = self.parameter
        return body


def accept_only(req: falcon.Request, accepted: tuple[str, ...]) -> None:
    """Refuse the first query parameter not in `accepted`.

    Ignored, a misspelt filter (min_ag=30) would get an answer for every user, as if the
    filter had been applied.
    """
    for name in req.params:
        if name not in accepted:
            takes = f"it takes {', '.join(accepted)}" if accepted else "it takes none"
            raise InvalidParameter(name, f"is not a query parameter of {req.path}; {takes}")


def _single(req: falcon.Request, name: str) -> str | None:
    value = req.params.get(name)
    if isinstance(value, list):
        raise InvalidParameter(name, "give it once")
    return value


def whole_number(req: falcon.Request, name: str, low: int, high: int) -> int | None:
    """An integer parameter in [low, high], or None when absent."""
    raw = _single(req, name)
    if raw is None:
        return None
    if not WHOLE_NUMBER.fullmatch(raw):
        raise InvalidParameter(name, f"must be a whole number, not {raw!r}")
    number = int(raw)
    if not low <= number <= high:
        raise InvalidParameter(name, f"must be between {low} and {high}, not {number}")
    return number


def boolean(req: falcon.Request, name: str) -> bool | None:
    """true/false or 1/0 in any case, or None when absent."""
    raw = _single(req, name)
    if raw is None:
        return None
    word = raw.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidParameter(name, f"must be true, false, 1 or 0, not {raw!r}")


def user_filter(req: falcon.Request) -> UserFilter:
    """The filters shared by /data, /stats and /stats/ages."""
    has_image = boolean(req, "is_image_exists")
    min_age = whole_number(req, "min_age", 0, MAX_AGE)
    max_age = whole_number(req, "max_age", 0, MAX_AGE)
    if min_age is not None and max_age is not None and min_age > max_age:
        raise InvalidParameter("min_age", f"must not be above max_age ({min_age} > {max_age})")
    search = search_text(req)
    return UserFilter(has_image=has_image, min_age=min_age, max_age=max_age, search=search)


def search_text(req: falcon.Request) -> str | None:
    """`q`: text to find in user ids (as a prefix) and names, or None when absent."""
    raw = _single(req, "q")
    if raw is None:
        return None
    if len(raw) > MAX_SEARCH_LENGTH or not is_plain_text(raw):
        raise InvalidParameter(
            "q", f"must be 1 to {MAX_SEARCH_LENGTH} characters, none of them control characters"
        )
    return raw


def user_cursor(req: falcon.Request) -> str | None:
    """The `after` cursor: the last user id of the previous page."""
    after = _single(req, "after")
    if after is not None and not looks_like_user_id(after):
        raise InvalidParameter(
            "after", f"must be a user id of 1 to {MAX_USER_ID_LENGTH} printable characters"
        )
    return after


def looks_like_user_id(text: str) -> bool:
    """Whether `text` could be a stored user id; others cannot match and some (NUL) upset drivers."""
    return len(text) <= MAX_USER_ID_LENGTH and is_plain_text(text)


def is_plain_text(text: str) -> bool:
    """Non-empty, free of control characters, and encodable (no lone surrogates)."""
    if not re.fullmatch(PLAIN_TEXT, text):
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def output_format(req: falcon.Request) -> str:
    """`format=json|csv` when given, otherwise what the Accept header prefers."""
    raw = _single(req, "format")
    if raw is not None:
        if raw not in FORMATS:
            raise InvalidParameter("format", f"must be one of {', '.join(FORMATS)}, not {raw!r}")
        return raw
    # Media types are case-insensitive; Falcon's matching is not, so compare in lower case.
    try:
        preferred = falcon.mediatypes.best_match(
            ["application/json", "text/csv"], req.accept.lower()
        )
    except ValueError:  # an Accept header that does not parse: the default, as Falcon does
        preferred = ""
    return "csv" if preferred == "text/csv" else "json"

"""Conditional GETs: an ETag on every answer that can be revalidated, and a 304 for a client
whose copy is current, decided before the store reads a single user.

Users, their listings and the statistics change only when a load changes the users, which
moves the data version (`shared.db.data_version`), and the ages in them move with the UTC
day; so their tag is the data version, the day and the representation (JSON or CSV). Each
resource reads the version before the rows: a load committing in between can only make a
tag older than its body, which costs the client one full answer more, never a stale 304.
A run changes while it runs (its progress) and may be retried, so its tag is a digest of
its JSON.

`Cache-Control: no-cache` lets a browser keep an answer and reuse it after asking, with
If-None-Match, whether it is still current.
"""

import hashlib
from datetime import date

import falcon

CACHE_CONTROL = "no-cache"


def data_tag(version: str, today: date, representation: str = "json") -> str:
    """The tag of an answer computed from the users on `today`."""
    return f"{version}-{today:%Y%m%d}-{representation}"


def content_tag(body: bytes) -> str:
    """The tag of an answer that is cheap to compute whole: a digest of its bytes."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def names(req: falcon.Request, tag: str) -> bool:
    """Whether If-None-Match lists `tag` itself (compared weakly, as RFC 9110 says for GET)."""
    return any(given != "*" and str(given) == tag for given in req.if_none_match or ())


def not_modified(req: falcon.Request, resp: falcon.Response, tag: str) -> bool:
    """Tag the response; True when the client's copy is current, and the response a 304.

    The caller has made sure the resource exists, so `If-None-Match: *` matches too.
    """
    resp.etag = tag
    resp.cache_control = [CACHE_CONTROL]
    if names(req, tag) or "*" in (req.if_none_match or ()):
        resp.status = falcon.HTTP_304
        return True
    return False

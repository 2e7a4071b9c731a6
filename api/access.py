"""Who may read, and what every response tells the browser about itself.

Names and birth dates are personal data. With `ZIPFLOW_API_READ_TOKEN` set, every read is
refused without a bearer token except the few routes that hold none (health, readiness,
metrics, the API description, the console's page shells and static files): new data routes are
protected without anyone remembering to.
"""

import hmac

import falcon

# Hold no user data, so a reader needs no token (pages fetch their data with one).
OPEN_ROUTES = frozenset({"/health", "/ready", "/metrics", "/openapi.json"})
READ_METHODS = ("GET", "HEAD")

# Console pages run only their own scripts and styles and talk only to this origin; user
# images are shown from blob: URLs, since an <img> cannot send the token.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def bearer_token(req: falcon.Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header, or None."""
    scheme, _, given = (req.auth or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return given.strip()


def is_one_of(given: str | None, tokens: tuple[str, ...]) -> bool:
    """Whether `given` equals one of the configured (non-empty) tokens, in constant time."""
    if given is None:
        return False
    matches = [hmac.compare_digest(given.encode(), token.encode()) for token in tokens if token]
    return any(matches)


class ReadTokenMiddleware:
    """Refuse reads outside `open_routes` without the read token (or the write token)."""

    def __init__(self, read_token: str, write_token: str, open_routes: frozenset[str]) -> None:
        self.tokens = (read_token, write_token)
        self.enabled = bool(read_token)
        self.open_routes = open_routes

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict
    ) -> None:
        # resource is None for static files and unknown paths (a 404 either way).
        if not self.enabled or resource is None or req.method not in READ_METHODS:
            return
        if req.uri_template in self.open_routes:
            return
        if not is_one_of(bearer_token(req), self.tokens):
            raise falcon.HTTPUnauthorized(
                title="Token required",
                description="reads need Authorization: Bearer <ZIPFLOW_API_READ_TOKEN>",
                challenges=["Bearer"],
            )


class SecurityHeaders:
    """Headers on every response: no MIME sniffing, no Referer leaving the site, and a CSP.

    The CSP matters for the console's HTML; on JSON, CSV and images it costs nothing and
    keeps a response opened directly in a browser from running anything.
    """

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)

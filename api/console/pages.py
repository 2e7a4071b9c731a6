"""The console's routes: page shells rendered by Jinja2 (autoescaped) and its static files.

A shell carries no user data, only the id in its own URL (escaped by the template engine),
so it needs no token; its script fetches the data with one.
"""

from importlib.resources import files
from typing import Any

import falcon
import jinja2

from shared.config import Settings

HTML_TYPE = "text/html; charset=utf-8"
PACKAGE = files("api.console")
STATIC_PREFIX = "/static"
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("api.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


class Page:
    """One page: a template, the script that fills it, and what the template needs."""

    def __init__(self, template: str, title: str, section: str, **context: Any) -> None:
        self.template = TEMPLATES.get_template(template)
        self.context = {"title": title, "section": section, **context}

    def on_get(self, req: falcon.Request, resp: falcon.Response, **ids: str) -> None:
        resp.content_type = HTML_TYPE
        resp.text = self.template.render(**self.context, **ids)


def console_links(settings: Settings) -> list[tuple[str, str]]:
    """(label, url) of the operator's consoles that are configured."""
    links = [
        ("RabbitMQ management", settings.rabbitmq_management_url),
        ("MinIO console", settings.minio_console_url),
    ]
    return [(label, url) for label, url in links if url]


def pages(settings: Settings, api_document: dict[str, Any]) -> dict[str, Page]:
    """Every console route and its page."""
    return {
        "/": Page("overview.html", "Overview", "overview", links=console_links(settings)),
        "/ui/users": Page("users.html", "Users", "users"),
        "/ui/users/{user_id}": Page("user.html", "User", "users"),
        "/ui/runs": Page("runs.html", "Runs", "runs"),
        "/ui/runs/{run_id}": Page("run.html", "Run", "runs"),
        "/ui/upload": Page("upload.html", "Upload", "upload"),
        "/docs": Page("docs.html", "API reference", "docs", api=api_document),
    }


def add_console(
    app: falcon.App, settings: Settings, api_document: dict[str, Any]
) -> frozenset[str]:
    """Route the console's pages and static files; the page routes, which hold no data."""
    routes = pages(settings, api_document)
    for route, page in routes.items():
        app.add_route(route, page)
    app.add_static_route(STATIC_PREFIX, str(PACKAGE / "static"))
    return frozenset(routes)

"""ZIPFLOW_API_READ_TOKEN and the headers every response carries."""

from dataclasses import replace

import pytest
from falcon.testing import TestClient
from sample_people import API_TOKEN

from api.access import CONTENT_SECURITY_POLICY
from shared.config import Settings

READ_TOKEN = "read-only-token"
PROTECTED = ("/data", "/data/1", "/data/1/image", "/stats", "/stats/ages", "/runs", "/runs/1")
OPEN = (
    "/health",
    "/ready",
    "/openapi.json",
    "/",
    "/ui/users",
    "/ui/users/1",
    "/ui/runs",
    "/ui/runs/1",
    "/ui/upload",
    "/docs",
    "/static/common.js",
    "/static/console.css",
)


@pytest.fixture
def guarded(make_client, loaded, settings: Settings) -> TestClient:
    return make_client(
        app_settings=replace(settings, api_token=API_TOKEN, api_read_token=READ_TOKEN)
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", PROTECTED)
def test_with_a_read_token_set_every_data_read_needs_it(guarded: TestClient, path: str) -> None:
    refused = guarded.simulate_get(path)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.json["description"] == (
        "reads need Authorization: Bearer <ZIPFLOW_API_READ_TOKEN>"
    )
    assert guarded.simulate_get(path, headers=bearer("wrong")).status_code == 401
    assert guarded.simulate_get(path, headers=bearer(READ_TOKEN)).status_code == 200
    # Whoever may write may read.
    assert guarded.simulate_get(path, headers=bearer(API_TOKEN)).status_code == 200


@pytest.mark.parametrize("path", OPEN)
def test_pages_and_probes_hold_no_user_data_and_stay_open(guarded: TestClient, path: str) -> None:
    assert guarded.simulate_get(path).status_code == 200


def test_the_read_token_does_not_allow_writes(guarded: TestClient) -> None:
    assert guarded.simulate_post("/data", headers=bearer(READ_TOKEN)).status_code == 401


def test_without_a_read_token_reads_stay_open(client: TestClient) -> None:
    for path in PROTECTED:
        assert client.simulate_get(path).status_code == 200, path


@pytest.mark.parametrize(
    "path", ["/", "/ui/users", "/stats", "/data/1/image", "/static/common.js", "/nowhere"]
)
def test_every_response_forbids_sniffing_referrers_and_other_origins(
    client: TestClient, path: str
) -> None:
    headers = client.simulate_get(path).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY

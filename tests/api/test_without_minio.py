"""An API with no MinIO configured: images from the local directory `zipflow process`
writes to, HEAD wherever GET works, and a 503 that says what needs MinIO."""

from dataclasses import replace

import falcon.testing
import peewee
import pytest

from api.app import create_app
from shared.config import Settings
from shared.pipeline import Job, process
from shared.storage import LocalStore, processed_store
from tests.shared.zips import PNG, users_zip


@pytest.fixture
def local_settings(tmp_path) -> Settings:
    return replace(Settings(), data_dir=tmp_path / "data")


@pytest.fixture
def local_client(local_settings: Settings, store_db: peewee.Database, tmp_path):
    """The API on a store loaded the way `zipflow process` loads it without MinIO."""
    store = processed_store(local_settings)
    assert isinstance(store, LocalStore)
    archive = users_zip(tmp_path / "a.zip", ["1", "2"], images=("1",))
    assert process(Job(archive, str(archive)), local_settings, store).status == "succeeded"
    return falcon.testing.TestClient(create_app(local_settings))


def test_images_are_served_from_the_local_directory_with_the_minio_headers(local_client):
    result = local_client.simulate_get("/data/1/image")
    assert (result.status_code, result.headers["content-type"], result.content) == (
        200,
        "image/png",
        PNG,
    )
    assert result.headers["content-length"] == str(len(PNG))
    assert local_client.simulate_get("/data/2/image").status_code == 404


def test_post_data_without_minio_is_a_503_that_says_what_to_do(local_client, local_settings):
    result = local_client.simulate_post("/data")
    assert result.status_code == 503
    assert result.json["title"] == "Needs MinIO"
    assert result.json["description"].startswith("POST /data needs MinIO and RabbitMQ")
    assert "zipflow process" in result.json["description"]


@pytest.mark.parametrize(
    "path",
    [
        "/data",
        "/data?limit=1",
        "/data/1",
        "/data/1/image",
        "/stats",
        "/runs",
        "/runs/1",
        "/health",
        "/ready",
        "/openapi.json",
    ],
)
def test_head_answers_wherever_get_does_with_its_headers_and_no_body(local_client, path):
    got = local_client.simulate_get(path)
    head = local_client.simulate_head(path)
    assert (head.status_code, head.content) == (got.status_code, b"")
    assert head.headers["content-type"] == got.headers["content-type"]
    # /ready's body carries how long each check took, so its length may differ by a digit.
    if "content-length" in got.headers and path != "/ready":
        assert head.headers["content-length"] == got.headers["content-length"]


def test_head_keeps_the_errors_of_get(local_client):
    assert local_client.simulate_head("/data/nobody").status_code == 404
    assert local_client.simulate_head("/stats?min_age=x").status_code == 400


def test_storage_choice_follows_the_access_key_unless_told(local_settings):
    assert not local_settings.uses_minio
    assert replace(local_settings, s3_access_key="key").uses_minio
    assert not replace(local_settings, s3_access_key="key", storage="local").uses_minio
    assert replace(local_settings, storage="minio").uses_minio

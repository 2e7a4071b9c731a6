"""ETags and 304s: a client with a current copy is answered without reading a user, and a
load, a new day or a moving run gives a new tag."""

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
from falcon.testing import TestClient
from sample_people import PEOPLE, SOURCE_KEY, TODAY, build_archive, load_archive

from shared.models import Run, User

CACHED = ("/data", "/data?limit=2", "/data?format=csv", "/data/1", "/stats", "/stats/ages")


def etag_of(client: TestClient, path: str, **headers: str) -> str:
    result = client.simulate_get(path, headers=headers)
    assert result.status_code == 200, result.text
    return result.headers["etag"]


def revalidate(client: TestClient, path: str, etag: str, **headers: str):
    return client.simulate_get(path, headers={"If-None-Match": etag, **headers})


@pytest.mark.parametrize("path", CACHED)
def test_a_current_copy_is_a_304_with_its_tag_and_no_body(client: TestClient, path: str) -> None:
    etag = etag_of(client, path)
    result = revalidate(client, path, etag)
    assert result.status_code == 304
    assert result.content == b""
    assert result.headers["etag"] == etag
    assert result.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("path", CACHED)
def test_a_304_reads_no_user(client: TestClient, path: str, caplog) -> None:
    etag = etag_of(client, path)
    caplog.set_level(logging.DEBUG, logger="peewee")
    assert revalidate(client, path, etag).status_code == 304
    queries = [str(record.msg) for record in caplog.records if record.name == "peewee"]
    assert queries, "peewee logs every query it sends"
    assert not [query for query in queries if User._meta.table_name in query]


def test_every_answer_tells_a_browser_to_revalidate(client: TestClient) -> None:
    for path in (*CACHED, "/runs/1"):
        result = client.simulate_get(path)
        assert result.headers["cache-control"] == "no-cache", path
        assert result.headers["etag"].startswith('"'), path


def test_a_weak_tag_or_one_of_several_matches(client: TestClient) -> None:
    etag = etag_of(client, "/stats")
    assert revalidate(client, "/stats", f'"other", W/{etag}').status_code == 304
    assert revalidate(client, "/stats", '"other"').status_code == 200
    assert revalidate(client, "/stats", "*").status_code == 304


def test_json_and_csv_listings_have_their_own_tags(client: TestClient) -> None:
    as_json = etag_of(client, "/data")
    as_csv = etag_of(client, "/data", Accept="text/csv")
    assert as_json != as_csv
    assert revalidate(client, "/data", as_json, Accept="text/csv").status_code == 200
    assert client.simulate_get("/data").headers["vary"] == "Accept"


def test_a_load_that_changes_the_users_changes_every_tag(
    client: TestClient, settings, minio, tmp_path
) -> None:
    before = {path: etag_of(client, path) for path in CACHED}
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE[:-1]), SOURCE_KEY)
    for path, etag in before.items():
        result = revalidate(client, path, etag)
        assert result.status_code == 200, path
        assert result.headers["etag"] != etag
    assert client.simulate_get("/stats").json["count"] == len(PEOPLE) - 1


def test_an_unchanged_reload_keeps_the_tags(client: TestClient, settings, minio, tmp_path) -> None:
    before = {path: etag_of(client, path) for path in CACHED}
    load_archive(settings, minio, tmp_path, build_archive(), "drops/again.zip")
    for path, etag in before.items():
        assert revalidate(client, path, etag).status_code == 304, path


def test_the_next_day_changes_the_tags_since_ages_move(
    make_client: Callable[..., TestClient], loaded
) -> None:
    today, tomorrow = make_client(today=TODAY), make_client(today=TODAY + timedelta(days=1))
    for path in CACHED:
        assert revalidate(tomorrow, path, etag_of(today, path)).status_code == 200, path


def test_an_unknown_user_is_a_404_even_for_any_tag(client: TestClient) -> None:
    assert revalidate(client, "/data/nobody", "*").status_code == 404
    assert revalidate(client, "/data/1", "*").status_code == 304


def test_a_runs_tag_follows_its_progress(client: TestClient, loaded: Run) -> None:
    path = f"/runs/{loaded.id}"
    etag = etag_of(client, path)
    assert revalidate(client, path, etag).status_code == 304
    Run.update(members_read=Run.members_read + 1).where(Run.id == loaded.id).execute()
    result = revalidate(client, path, etag)
    assert result.status_code == 200
    assert result.json["progress"]["members_read"] == loaded.members_read + 1
    assert result.headers["etag"] != etag
    assert result.headers["content-type"] == "application/json; charset=utf-8"


def test_a_304_needs_a_valid_request(client: TestClient) -> None:
    etag = etag_of(client, "/stats")
    result = client.simulate_get(
        "/stats", query_string="min_age=x", headers={"If-None-Match": etag}
    )
    assert result.status_code == 400
    assert client.simulate_get("/runs/999", headers={"If-None-Match": "*"}).status_code == 404

"""/runs, /runs/{id} and /health; /ready has tests/api/test_ready.py."""

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from falcon.testing import TestClient
from minio import Minio
from sample_people import BAD_FILES, PEOPLE, SOURCE_KEY, load_archive

from shared.config import Settings
from shared.demo import user_csv
from shared.models import Run, queue_run


def test_runs_lists_the_load_with_counts_and_rejections(
    client: TestClient, loaded: Run, settings: Settings
) -> None:
    result = client.simulate_get("/runs")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json; charset=utf-8"
    [run] = result.json
    assert run["id"] == loaded.id
    assert run["status"] == "succeeded"
    assert run["source"] == f"{settings.source_bucket}/{SOURCE_KEY}"
    assert run["counts"]["users_in_archive"] == len(PEOPLE)
    assert run["counts"]["inserted"] == len(PEOPLE)
    assert run["counts"]["images"] == sum(person.image for person in PEOPLE)
    assert run["rejections_total"] == len(BAD_FILES) == run["counts"]["rejected"]
    assert run["rejections"][0]["member"] == "people/bad.csv"
    assert run["started_at"].endswith("Z") and run["finished_at"].endswith("Z")
    assert run["duration_seconds"] >= 0
    assert run["progress"]["members_total"] > 0
    assert client.simulate_get(f"/runs/{loaded.id}").json == run


def test_runs_newest_first_and_paged(client: TestClient, loaded: Run) -> None:
    queued = [queue_run(f"bucket/extra-{n}.zip", "reprocess") for n in range(4)]
    newest_first = [run.id for run in reversed(queued)] + [loaded.id]
    first = client.simulate_get("/runs", query_string="limit=2")
    assert [run["id"] for run in first.json] == newest_first[:2]
    assert first.json[0]["status"] == "queued"
    assert first.headers["link"] == f'</runs?limit=2&before={newest_first[1]}>; rel="next"'
    second = client.simulate_get("/runs", query_string=f"limit=2&before={newest_first[1]}")
    third = client.simulate_get("/runs", query_string=f"limit=2&before={newest_first[3]}")
    assert [run["id"] for run in second.json] == newest_first[2:4]
    assert [run["id"] for run in third.json] == newest_first[4:]
    assert "link" not in third.headers


def test_a_run_shows_the_first_100_rejections_and_the_total(
    make_client: Callable[..., TestClient],
    settings: Settings,
    minio: Minio,
    store_db,
    tmp_path: Path,
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good.csv", user_csv("Ok", "Person", 0))
        for n in range(150):
            archive.writestr(f"bad{n}.csv", b"first_name,last_name,birthts\nA,B,not-a-number\n")
    run = load_archive(settings, minio, tmp_path, buffer.getvalue(), "many-bad.zip")
    body = make_client().simulate_get(f"/runs/{run.id}").json
    assert body["rejections_total"] == 150
    assert len(body["rejections"]) == 100
    assert all("not a whole number" in rejection["reason"] for rejection in body["rejections"])


def test_unknown_run_is_404(client: TestClient) -> None:
    for path in ("/runs/999999", "/runs/0", "/runs/abc", "/runs/99999999999999999999"):
        result = client.simulate_get(path)
        assert result.status_code == 404, path
        assert result.headers["content-type"] == "application/json; charset=utf-8"


def test_health(client: TestClient) -> None:
    assert client.simulate_get("/health").json == {"status": "ok"}


@pytest.mark.parametrize(
    "path", ["/data", "/data?limit=5", "/stats", "/runs", "/runs/1", "/data/1", "/data/1/image"]
)
def test_data_endpoints_are_503_not_500_when_the_store_does_not_answer(
    make_client: Callable[..., TestClient], dead_store: None, path: str
) -> None:
    route, _, query = path.partition("?")
    result = make_client().simulate_get(route, query_string=query)
    assert result.status_code == 503
    assert result.json["title"] == "Store unavailable"

"""GET /data: filters alone and combined, age boundaries, paging, streaming, CSV, one user, images."""

import csv
import io
import json
from collections.abc import Callable
from datetime import date

import falcon.testing
import pytest
from falcon.testing import TestClient
from minio import Minio
from sample_people import PEOPLE, TODAY, by_id, counted_age

from shared.config import Settings
from shared.db import open_database
from shared.queries import UserFilter, iter_users
from shared.storage import MinioStore

JSON_TYPE = "application/json; charset=utf-8"
NUMERIC_ORDER = ["1", "2", "3", "10", "11", "12", "13", "abc"]


def ids(result) -> list[str]:
    return [user["user_id"] for user in result.json]


def expected_ids(
    today: date = TODAY, image: bool | None = None, low: int | None = None, high: int | None = None
):
    chosen = []
    for person in PEOPLE:
        age = counted_age(person.born, today)
        if image is not None and person.image != image:
            continue
        if (low is not None and age < low) or (high is not None and age > high):
            continue
        chosen.append(person.user_id)
    return [user_id for user_id in NUMERIC_ORDER if user_id in chosen]


def test_all_users_in_id_order_with_every_field(client: TestClient, settings: Settings) -> None:
    result = client.simulate_get("/data")
    assert result.status_code == 200
    assert result.headers["content-type"] == JSON_TYPE
    assert ids(result) == NUMERIC_ORDER
    ada = result.json[0]
    assert ada == {
        "user_id": "1",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "birthts": by_id("1").birthts,
        "birthdate": "2000-06-15",
        "age": 26,
        "img_path": settings.image_path("1"),
    }
    assert result.json[1]["img_path"] is None


def test_non_ascii_names_round_trip(client: TestClient) -> None:
    result = client.simulate_get("/data/3")
    assert (result.json["first_name"], result.json["last_name"]) == ("José", "Ñúñez-Łódź")
    assert "Ñúñez-Łódź".encode() in result.content
    assert client.simulate_get("/data/abc").json["last_name"] == "山田"


@pytest.mark.parametrize(
    ("query", "image", "low", "high"),
    [
        ("is_image_exists=true", True, None, None),
        ("is_image_exists=FALSE", False, None, None),
        ("is_image_exists=1", True, None, None),
        ("is_image_exists=0", False, None, None),
        ("min_age=26", None, 26, None),
        ("max_age=25", None, None, 25),
        ("min_age=25&max_age=25", None, 25, 25),
        ("min_age=20&max_age=40", None, 20, 40),
        ("is_image_exists=true&min_age=20&max_age=40", True, 20, 40),
        ("is_image_exists=false&max_age=30", False, None, 30),
        ("min_age=0", None, 0, None),
        ("max_age=150", None, None, 150),
    ],
)
def test_filters_alone_and_combined(client: TestClient, query: str, image, low, high) -> None:
    expected = expected_ids(image=image, low=low, high=high)
    assert expected, "each case must select someone, or it proves little"
    assert ids(client.simulate_get("/data", query_string=query)) == expected
    # Paged listings and CSV apply the same filters.
    paged = client.simulate_get("/data", query_string=query + "&limit=1000")
    assert ids(paged) == expected
    rows = list(
        csv.DictReader(
            io.StringIO(client.simulate_get("/data", query_string=query + "&format=csv").text)
        )
    )
    assert [row["user_id"] for row in rows] == expected


def test_filters_that_match_nobody_give_an_empty_list(client: TestClient) -> None:
    for query in ("min_age=100", "min_age=16&max_age=21", "is_image_exists=false&max_age=20"):
        result = client.simulate_get("/data", query_string=query)
        assert result.status_code == 200
        assert result.json == []


def test_empty_store_gives_an_empty_list(make_client: Callable, store_db) -> None:
    client = make_client()
    assert client.simulate_get("/data").json == []
    assert client.simulate_get("/data", query_string="limit=5").json == []
    assert (
        client.simulate_get("/data", query_string="format=csv").text
        == "user_id,first_name,last_name,birthts,img_path\n"
    )


@pytest.mark.parametrize(
    ("today", "query", "included"),
    [
        # Born 2000-06-15: 25 the day before the birthday, 26 on it.
        (date(2026, 6, 14), "min_age=26&max_age=26", False),
        (date(2026, 6, 15), "min_age=26&max_age=26", True),
        (date(2026, 6, 14), "max_age=25", True),
        (date(2026, 6, 15), "max_age=25", False),
    ],
)
def test_age_boundary_on_a_birthday(
    make_client: Callable, loaded, today: date, query: str, included: bool
) -> None:
    result = make_client(today=today).simulate_get("/data", query_string=query)
    assert ("1" in ids(result)) is included
    if included:
        assert next(u for u in result.json if u["user_id"] == "1")["age"] == counted_age(
            date(2000, 6, 15), today
        )


@pytest.mark.parametrize(
    ("today", "user_id", "age"),
    [
        # Born 2004-02-29: a year older on 1 March in common years, on 29 February in leap years.
        (date(2026, 2, 28), "10", 21),
        (date(2026, 3, 1), "10", 22),
        (date(2028, 2, 28), "10", 23),
        (date(2028, 2, 29), "10", 24),
        # Today is 29 February: born 2001-02-28 is 27, born 2001-03-01 is still 26.
        (date(2028, 2, 29), "12", 27),
        (date(2028, 2, 29), "13", 26),
    ],
)
def test_age_boundary_on_29_february(
    make_client: Callable, loaded, today: date, user_id: str, age: int
) -> None:
    client = make_client(today=today)
    assert client.simulate_get(f"/data/{user_id}").json["age"] == age
    exact = ids(client.simulate_get("/data", query_string=f"min_age={age}&max_age={age}"))
    assert user_id in exact
    assert user_id not in ids(client.simulate_get("/data", query_string=f"min_age={age + 1}"))
    assert user_id not in ids(client.simulate_get("/data", query_string=f"max_age={age - 1}"))
    assert exact == expected_ids(today=today, low=age, high=age)


def test_paging_follows_the_link_header_to_the_end(client: TestClient) -> None:
    seen, url, pages = [], "/data?limit=3&is_image_exists=true", 0
    while url:
        path, _, query = url.partition("?")
        result = client.simulate_get(path, query_string=query)
        assert result.status_code == 200
        seen += ids(result)
        pages += 1
        link = result.headers.get("link")
        url = link.split(">")[0].lstrip("<") if link else None
        if url:
            assert link.endswith('rel="next"')
            assert "is_image_exists=true" in url and "limit=3" in url
    assert seen == expected_ids(image=True)
    assert pages == 2


def test_last_full_page_has_no_next_link(client: TestClient) -> None:
    result = client.simulate_get("/data", query_string=f"limit={len(PEOPLE)}")
    assert ids(result) == NUMERIC_ORDER
    assert "link" not in result.headers
    # Sent whole, so waitress can keep the connection open.
    assert result.headers["content-length"] == str(len(result.content))


def test_after_cursor_uses_numeric_order(client: TestClient) -> None:
    result = client.simulate_get("/data", query_string="limit=2&after=3")
    assert ids(result) == ["10", "11"]
    assert result.headers["link"] == '</data?limit=2&after=11>; rel="next"'


def test_csv_by_accept_header_uses_the_output_csv_layout(
    client: TestClient, settings: Settings
) -> None:
    result = client.simulate_get("/data", headers={"Accept": "text/csv"})
    assert result.status_code == 200
    assert result.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(result.text)))
    assert rows[0] == ["user_id", "first_name", "last_name", "birthts", "img_path"]
    assert rows[1] == ["1", "Ada", "Lovelace", str(by_id("1").birthts), settings.image_path("1")]
    assert rows[2] == ["2", "Alan", "Turing", str(by_id("2").birthts), ""]
    assert ["12", "Chloé", "O'Brien, Jr.", str(by_id("12").birthts), ""] in rows
    assert [row[0] for row in rows[1:]] == NUMERIC_ORDER


@pytest.mark.parametrize("accept", ["TEXT/CSV", "Text/Csv; q=1, application/json; q=0.5"])
def test_the_accept_header_is_matched_in_any_case(client: TestClient, accept: str) -> None:
    result = client.simulate_get("/data", query_string="limit=1", headers={"Accept": accept})
    assert result.headers["content-type"] == "text/csv; charset=utf-8"
    assert result.text.splitlines()[0] == "user_id,first_name,last_name,birthts,img_path"


def test_csv_matches_the_pipelines_output_csv(
    client: TestClient, settings: Settings, minio: Minio
) -> None:
    output = MinioStore(minio, settings.processed_bucket).get("output.csv")
    assert client.simulate_get("/data", query_string="format=csv").content == output


def test_full_listing_is_streamed_in_chunks(client: TestClient) -> None:
    environ = falcon.testing.create_environ("/data")
    statuses = []
    body = client.app(environ, lambda status, headers: statuses.append(status))
    # A generator the server drains chunk by chunk, not one prebuilt string.
    assert not isinstance(body, list | tuple | bytes)
    chunks = list(body)
    assert statuses == ["200 OK"]
    assert len(chunks) >= 3
    assert [user["user_id"] for user in json.loads(b"".join(chunks))] == NUMERIC_ORDER


def test_one_user_and_a_missing_one(client: TestClient) -> None:
    result = client.simulate_get("/data/10")
    assert result.headers["content-type"] == JSON_TYPE
    assert result.json["birthdate"] == "2004-02-29"
    missing = client.simulate_get("/data/999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == JSON_TYPE
    assert "999" in missing.json["description"]


def test_image_endpoint_serves_the_png_or_404(
    client: TestClient, settings: Settings, minio: Minio
) -> None:
    result = client.simulate_get("/data/1/image")
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    assert result.content == MinioStore(minio, settings.processed_bucket).get("images/1.png")
    assert result.content.startswith(b"\x89PNG")
    assert client.simulate_get("/data/2/image").status_code == 404  # a user without an image
    assert client.simulate_get("/data/nobody/image").status_code == 404


def test_after_without_limit_streams_the_rest(client: TestClient) -> None:
    assert ids(client.simulate_get("/data", query_string="after=11")) == ["12", "13", "abc"]


def test_postgres_full_listing_reads_through_a_server_side_cursor(
    loaded, database_url: str, make_client: Callable[..., TestClient]
) -> None:
    """A plain postgresql:// URL binds the ext database: the full listing fetches in batches."""
    if not database_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    db = open_database(database_url)
    rows = iter_users(UserFilter(), TODAY)
    first = next(rows)
    open_cursors = db.execute_sql("SELECT count(*) FROM pg_cursors").fetchone()[0]
    assert open_cursors == 1
    assert [first[0], *(row[0] for row in rows)] == NUMERIC_ORDER
    assert db.execute_sql("SELECT count(*) FROM pg_cursors").fetchone()[0] == 0
    assert ids(make_client().simulate_get("/data")) == NUMERIC_ORDER

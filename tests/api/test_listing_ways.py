"""Listings read an age range one of two ways (shared.queries._listing): by sorting the
range when it holds few users, by walking the ids when it holds many. Both give the same."""

import io
import random
import zipfile
from datetime import date
from pathlib import Path

from falcon.testing import TestClient
from sample_people import TODAY, load_archive

from shared.demo import user_csv
from shared.queries import SORT_AT_MOST

# More than SORT_AT_MOST users aged 30 and a few of other ages, ids shuffled into the zip.
THIRTY = SORT_AT_MOST + 200
OTHERS = 50


def ages_archive() -> tuple[bytes, list[str], list[str]]:
    rng = random.Random(3)
    thirty, others = [], []
    buffer = io.BytesIO()
    numbers = list(range(1, THIRTY + OTHERS + 1))
    rng.shuffle(numbers)
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, number in enumerate(numbers):
            born = date(1996, 1, 1) if index < THIRTY else date(1950, 1, 1)
            (thirty if index < THIRTY else others).append(str(number))
            birthts = int((born - date(1970, 1, 1)).total_seconds() * 1000) + 43_200_000
            archive.writestr(f"u/{number}.csv", user_csv(f"F{number}", f"L{number}", birthts))
    return buffer.getvalue(), sorted(thirty, key=int), sorted(others, key=int)


def all_pages(client: TestClient, query: str) -> list[str]:
    ids: list[str] = []
    path = f"/data?{query}&limit=1000"
    while path:
        result = client.simulate_get(path.split("?")[0], query_string=path.split("?")[1])
        ids += [user["user_id"] for user in result.json]
        link = result.headers.get("link")
        path = link[1 : link.index(">")] if link else ""
    return ids


def test_a_crowded_and_a_sparse_age_range_list_the_same_users_in_id_order(
    make_client, settings, minio, store_db, tmp_path: Path
) -> None:
    data, thirty, others = ages_archive()
    load_archive(settings, minio, tmp_path, data, "ages.zip")
    client = make_client(today=TODAY)
    assert all_pages(client, "min_age=20&max_age=40") == thirty  # crowded: walks the ids
    assert all_pages(client, "min_age=70") == others  # sparse: sorts the range
    streamed = client.simulate_get("/data", query_string="min_age=20&max_age=40").json
    assert [user["user_id"] for user in streamed] == thirty
    streamed = client.simulate_get("/data", query_string="min_age=70").json
    assert [user["user_id"] for user in streamed] == others

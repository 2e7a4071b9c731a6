"""How long the server spends on the console's requests with 100,000 users loaded.

    python bench/console_bench.py [--users 100000] [--repeat 30] [--database-url URL [--loaded]]

Loads a demo archive through the pipeline (as bench/api_bench.py does), then calls the app
in process (WSGI, no network, so the figures are the server's own time) and prints the
median of `--repeat` calls for: everything the overview asks for (its HTML, its scripts and
stylesheet, /stats, /stats/ages and /runs?limit=5), a page of 100 users as the users page
asks for it (first page, a page from the middle, with filters, with a search), and
/stats/ages. Beside each, the reference measured in the same run: the same answer from
SQL alone (shared.queries without the per-load aggregate, no HTTP, no JSON).
"""

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import falcon.testing
from api_bench import load_store
from pipeline_bench import cpu_model  # bench/, beside this script

from api.app import create_app
from shared.ages import utc_today
from shared.config import Settings
from shared.db import database, open_database
from shared.models import create_schema
from shared.queries import UserFilter, age_histogram, user_stats, users_page

OVERVIEW = (
    "/",
    "/static/console.css",
    "/static/common.js",
    "/static/overview.js",
    "/stats",
    "/stats/ages",
    "/runs?limit=5",
)
USER_PAGES = (
    ("first page", "/data?limit=100"),
    ("a page from the middle", "/data?limit=100&after=50000"),
    ("filtered", "/data?limit=100&is_image_exists=true&min_age=20&max_age=40"),
    ("a search", "/data?limit=100&q=ann"),
)
AGES = (
    ("all users", "/stats/ages"),
    ("filtered", "/stats/ages?is_image_exists=true&min_age=20"),
    ("a search (always SQL)", "/stats/ages?q=ann"),
)


def median_ms(call: Callable[[], object], repeat: int) -> float:
    call()  # warm the caches
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def get(client: falcon.testing.TestClient, path: str) -> Callable[[], object]:
    def call() -> object:
        result = client.simulate_get(path)
        assert result.status_code == 200, (path, result.status_code, result.text[:200])
        return result

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument(
        "--loaded", action="store_true", help="the store at --database-url is loaded already"
    )
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    with tempfile.TemporaryDirectory() as scratch:
        database_url = args.database_url or f"sqlite:///{scratch}/bench.db"
        if args.loaded and args.database_url:
            open_database(database_url)
            create_schema()  # brings an older store's schema up to date
        else:
            load_store(args.users, database_url, Path(scratch))
        client = falcon.testing.TestClient(create_app(Settings(database_url=database_url)))
        today = utc_today()
        everything = UserFilter()
        middle = "50000"

        print(f"\nthe overview ({len(OVERVIEW)} requests), median of {args.repeat} each:")
        total = 0.0
        for path in OVERVIEW:
            spent = median_ms(get(client, path), args.repeat)
            total += spent
            print(f"  GET {path}: {spent:.1f} ms")
        sql = median_ms(lambda: user_stats(everything, today), args.repeat) + median_ms(
            lambda: age_histogram(everything, today), args.repeat
        )
        print(
            f"  total: {total:.1f} ms (target < 200 ms); reference, the two in SQL alone: {sql:.1f} ms"
        )

        print("\na page of 100 users (target < 50 ms):")
        filters = {
            "first page": (everything, None),
            "a page from the middle": (everything, middle),
            "filtered": (UserFilter(has_image=True, min_age=20, max_age=40), None),
            "a search": (UserFilter(search="ann"), None),
        }
        for label, path in USER_PAGES:
            where, after = filters[label]
            spent = median_ms(get(client, path), args.repeat)
            query = median_ms(lambda w=where, a=after: users_page(w, today, 100, a), args.repeat)
            print(f"  {label}, GET {path}: {spent:.1f} ms; reference, in SQL alone: {query:.1f} ms")

        print("\nGET /stats/ages (target < 30 ms):")
        ages_filters = {
            "all users": everything,
            "filtered": UserFilter(has_image=True, min_age=20),
            "a search (always SQL)": UserFilter(search="ann"),
        }
        for label, path in AGES:
            where = ages_filters[label]
            spent = median_ms(get(client, path), args.repeat)
            query = median_ms(lambda w=where: age_histogram(w, today), args.repeat)
            print(f"  {label}, GET {path}: {spent:.1f} ms; reference, in SQL alone: {query:.1f} ms")
        database.close()
    print(
        f"\nload average {os.getloadavg()[0]:.1f} at the end (other work on the machine skews every figure)"
    )


if __name__ == "__main__":
    main()

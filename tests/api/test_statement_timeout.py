"""On PostgreSQL the API's queries run with a statement timeout: a query stuck behind a lock
or a slow plan costs its caller a 503, never a request thread for ever."""

import threading
import time

import psycopg2
import pytest

from shared.db import open_database
from shared.models import create_schema


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_query_over_the_statement_timeout_is_a_503_not_a_thread_held_for_ever(
    make_client, database_url: str
) -> None:
    open_database(database_url, statement_timeout_seconds=1)
    create_schema()
    client = make_client()
    locker = psycopg2.connect(database_url)
    try:
        with locker.cursor() as cursor:
            # /stats now waits for this lock; the timeout counts the wait.
            cursor.execute("LOCK TABLE app_user IN ACCESS EXCLUSIVE MODE")
            release = threading.Timer(5, locker.rollback)
            release.start()
            started = time.perf_counter()
            result = client.simulate_get("/stats")
            seconds = time.perf_counter() - started
            release.cancel()
    finally:
        locker.close()
    assert result.status_code == 503
    assert result.json["title"] == "Store unavailable"
    assert "statement timeout" in result.json["description"]
    assert 0.9 < seconds < 3

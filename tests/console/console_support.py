"""Data for the browser tests: people, their archives, and loading them as the worker does."""

import io
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from minio import Minio
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from shared.config import Settings
from shared.demo import demo_png, user_csv
from shared.models import Run
from shared.pipeline import Job, Progress, process
from shared.storage import MinioStore, SourceBucket

WAIT_SECONDS = 15
HOSTILE_FIRST = "<img src=x onerror=alert(1)>"
HOSTILE_LAST = "</script><script>alert(2)</script>"


@dataclass(frozen=True)
class Person:
    user_id: str
    first_name: str
    last_name: str
    born: date
    image: bool

    @property
    def birthts(self) -> int:
        moment = datetime(self.born.year, self.born.month, self.born.day, 12, tzinfo=UTC)
        return int(moment.timestamp() * 1000)


PEOPLE = (
    Person("1", "Ada", "Lovelace", date(1990, 12, 10), True),
    Person("2", "Alan", "Turing", date(1982, 6, 23), False),
    Person("3", "José", "Ñúñez", date(1975, 3, 1), True),
    Person("4", "Zoë", "Müller", date(2004, 2, 29), True),
    Person("5", "Grace", "Hopper", date(1946, 12, 9), False),
    Person("6", "Chloé", "O'Brien", date(2001, 2, 28), False),
    Person("7", "Sven", "Tanaka", date(1999, 3, 1), True),
    Person("8", HOSTILE_FIRST, HOSTILE_LAST, date(1988, 8, 8), False),
)
# Files the pipeline rejects, so the run has rejections to show.
BAD_FILES = {
    "people/bad-date.csv": b"first_name,last_name,birthts\nNo,Date,yesterday\n",
    "people/9.csv": b"first_name,last_name\nOnly,Two\n",
}


def many_people(count: int, start: date = date(1950, 1, 1)) -> tuple[Person, ...]:
    rng = random.Random(count)
    return tuple(
        Person(
            str(number),
            f"First{number}",
            f"Last{number}",
            date(start.year + rng.randrange(0, 70), rng.randrange(1, 13), rng.randrange(1, 29)),
            False,
        )
        for number in range(1, count + 1)
    )


def build_archive(people: tuple[Person, ...], bad_files: dict[str, bytes] | None = None) -> bytes:
    rng = random.Random(7)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for person in people:
            archive.writestr(
                f"people/{person.user_id}.csv",
                user_csv(person.first_name, person.last_name, person.birthts),
            )
            if person.image:
                archive.writestr(f"people/{person.user_id}.png", demo_png(rng))
        for name, data in (bad_files or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def load_archive(
    settings: Settings,
    minio: Minio,
    tmp_path: Path,
    data: bytes,
    key: str,
    on_progress: Progress | None = None,
) -> Run:
    """Put the zip in the source bucket and load it through the pipeline as the worker would."""
    SourceBucket(minio, settings.source_bucket).upload(io.BytesIO(data), key, len(data))
    path = tmp_path / Path(key).name
    path.write_bytes(data)
    job = Job(path=path, source=f"{settings.source_bucket}/{key}", trigger="event")
    return process(
        job, settings, MinioStore(minio, settings.processed_bucket), on_progress=on_progress
    )


def wait(
    browser: WebDriver, condition: Callable[[WebDriver], object], seconds: float = WAIT_SECONDS
):
    """Poll `condition` until it is truthy; a table redrawn under it is read again."""
    return WebDriverWait(
        browser,
        seconds,
        poll_frequency=0.05,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(condition)


def script_errors(browser: WebDriver) -> list[str]:
    """What the page logged as a script error or a Content-Security-Policy violation.

    Failed requests (a 404 the page expects, say) are logged too, and are not errors here.
    """
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
    ]

"""The people the API tests load, with the dates that make age boundaries interesting."""

import io
import random
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from minio import Minio

from shared.config import Settings
from shared.demo import demo_png, user_csv
from shared.models import Run
from shared.pipeline import Job, process
from shared.storage import MinioStore, SourceBucket

TODAY = date(2026, 6, 15)
SOURCE_KEY = "drops/people.zip"
API_TOKEN = "s3cret-token"


@dataclass(frozen=True)
class Person:
    user_id: str
    first_name: str
    last_name: str
    born: date
    image: bool

    @property
    def birthts(self) -> int:
        """Noon UTC on the birth date, in ms."""
        return int(
            datetime(self.born.year, self.born.month, self.born.day, 12, tzinfo=UTC).timestamp()
            * 1000
        )


# Ages on TODAY (2026-06-15) in the comments.
PEOPLE = (
    Person("1", "Ada", "Lovelace", date(2000, 6, 15), True),  # 26: birthday today
    Person("2", "Alan", "Turing", date(2000, 6, 16), False),  # 25: birthday tomorrow
    Person("3", "José", "Ñúñez-Łódź", date(1986, 3, 1), True),  # 40
    Person("10", "Zoë", "Müller", date(2004, 2, 29), True),  # 22: born on 29 February
    Person("11", "Grace", "Hopper", date(1950, 1, 1), False),  # 76
    Person("12", "Chloé", "O'Brien, Jr.", date(2001, 2, 28), False),  # 25
    Person("13", "Sven", "Tanaka", date(2001, 3, 1), True),  # 25
    Person("abc", "Aiko", "山田", date(2010, 12, 31), True),  # 15
)
# Files the pipeline rejects, so runs carry rejections.
BAD_FILES = {"people/bad.csv": b"first_name,last_name,birthts\nNo,Date,yesterday\n"}


def by_id(user_id: str) -> Person:
    return next(person for person in PEOPLE if person.user_id == user_id)


def build_archive(people: tuple[Person, ...] = PEOPLE) -> bytes:
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
        for name, data in BAD_FILES.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def load_archive(settings: Settings, minio: Minio, tmp_path: Path, data: bytes, key: str) -> Run:
    """Put the zip in the source bucket, then load it through the pipeline as the worker would."""
    SourceBucket(minio, settings.source_bucket).upload(io.BytesIO(data), key, len(data))
    path = tmp_path / Path(key).name
    path.write_bytes(data)
    job = Job(path=path, source=f"{settings.source_bucket}/{key}", trigger="event")
    run = process(job, settings, MinioStore(minio, settings.processed_bucket))
    assert run.status == "succeeded", run.error
    return run


def counted_age(born: date, today: date) -> int:
    """Age as people count it, written independently of shared.ages to check it."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

"""Uploading through the page in a real browser: a zip dropped (or picked) is stored, the
worker's run for it appears and ends; the newest zip can be loaded again; and refusals
(no token, MinIO down) read as sentences."""

import base64
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pika
import pytest
from console_support import BAD_FILES, PEOPLE, build_archive, load_archive, script_errors, wait
from selenium.webdriver.common.by import By

from shared.config import Settings
from shared.storage import MinioStore, SourceBucket, minio_client
from tests.minio_events import minio_body, publish_as_minio
from worker.consumer import Backoff, Consumer
from worker.handler import Handler

TOKEN = "console-write-token"
READ_TOKEN = "console-read-token"


@pytest.fixture
def worker_settings(settings: Settings) -> Settings:
    return replace(settings, reconcile_seconds=0, api_token=TOKEN)


@pytest.fixture
def worker(worker_settings: Settings, minio, store_db) -> Iterator[pika.channel.Channel]:
    """A worker consuming the test's queue on the real broker; the channel MinIO would use."""
    client = minio_client(worker_settings)
    handler = Handler(
        worker_settings,
        SourceBucket(client, worker_settings.source_bucket),
        MinioStore(client, worker_settings.processed_bucket),
    )
    consumer = Consumer(worker_settings, handler, retry=Backoff(first=0.05, cap=0.2))
    thread = threading.Thread(target=consumer.run, name="console-worker")
    thread.start()
    assert consumer.consuming.wait(10), "the worker did not start consuming"
    connection = pika.BlockingConnection(pika.URLParameters(worker_settings.amqp_url))
    channel = connection.channel()
    yield channel
    consumer.stop()
    thread.join(timeout=30)
    for name in (worker_settings.queue, worker_settings.dead_letter):
        channel.queue_delete(name)
    for name in (worker_settings.exchange, worker_settings.dead_letter):
        channel.exchange_delete(name)
    connection.close()


def message(page) -> str:
    return page.find_element(By.ID, "upload-message").text


def give_token(page, token: str) -> None:
    page.find_element(By.ID, "token-input").send_keys(token)
    page.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()


def pick_zip(page, tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "dropped.zip"
    path.write_bytes(data)
    page.find_element(By.ID, "zip-file").send_keys(str(path))


def test_an_uploaded_zip_leads_to_a_run_with_its_rejections(
    page, console, worker, worker_settings, minio, tmp_path
) -> None:
    server = console(worker_settings)
    page.get(server.url + "/ui/upload")
    give_token(page, TOKEN)
    wait(page, lambda p: p.find_element(By.ID, "token-reason").text)
    pick_zip(page, tmp_path, build_archive(PEOPLE, BAD_FILES))
    page.find_element(By.ID, "upload-button").click()
    wait(page, lambda p: "Waiting for the worker" in message(p))
    assert page.find_element(By.ID, "upload-bar").get_attribute("value") == "100"
    source = message(page).split("Stored as ")[1].split(" ")[0]
    bucket, key = source.split("/", 1)
    assert bucket == worker_settings.source_bucket and key.startswith("uploads/")
    # MinIO's part: the bucket notification for the new object.
    stat = minio.stat_object(bucket, key)
    body = minio_body(bucket, key, stat.etag, stat.size, stat.last_modified)
    publish_as_minio(worker, worker_settings, body)

    wait(page, lambda p: "the worker started run" in message(p))
    followed = "#followed-run-body"
    wait(
        page,
        lambda p: (
            p.find_element(By.CSS_SELECTOR, followed).get_attribute("data-status") == "succeeded"
        ),
    )
    rows = page.find_elements(By.CSS_SELECTOR, f"{followed} table.rejections tbody tr")
    assert sorted(row.text.split(" ")[0] for row in rows) == sorted(BAD_FILES)
    assert server.get_json("/stats", TOKEN)["count"] == len(PEOPLE)
    assert script_errors(page) == []


DROP_FILE = """
const [name, base64] = arguments;
const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
const transfer = new DataTransfer();
transfer.items.add(new File([bytes], name, { type: "application/zip" }));
const zone = document.getElementById("drop-zone");
for (const type of ["dragenter", "dragover", "drop"]) {
  zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
}
"""


def test_a_zip_dropped_on_the_page_is_stored(page, console, worker_settings, minio) -> None:
    server = console(worker_settings)
    page.get(server.url + "/ui/upload")
    give_token(page, TOKEN)
    wait(page, lambda p: p.find_element(By.ID, "token-reason").text)
    data = build_archive(PEOPLE)
    page.execute_script(DROP_FILE, "dropped.zip", base64.b64encode(data).decode())
    wait(page, lambda p: "Waiting for the worker" in message(p))
    [stored] = minio.list_objects(worker_settings.source_bucket, prefix="uploads/", recursive=True)
    assert stored.size == len(data)
    assert message(page).startswith(
        f"Stored as {worker_settings.source_bucket}/{stored.object_name}"
    )


def test_load_the_newest_zip_again(page, console, worker, worker_settings, minio, tmp_path) -> None:
    load_archive(worker_settings, minio, tmp_path, build_archive(PEOPLE), "people.zip")
    server = console(worker_settings)
    page.get(server.url + "/ui/upload")
    give_token(page, TOKEN)
    wait(page, lambda p: p.find_element(By.ID, "reprocess"))
    page.find_element(By.ID, "reprocess").click()
    wait(page, lambda p: "Queued run" in message(p))
    body = "#followed-run-body"
    wait(
        page,
        lambda p: p.find_element(By.CSS_SELECTOR, body).get_attribute("data-status") == "succeeded",
    )
    assert "reprocess" in page.find_element(By.CSS_SELECTOR, body).text


def test_without_the_token_the_upload_asks_for_it(
    page, console, worker_settings, minio, tmp_path
) -> None:
    server = console(worker_settings)
    page.get(server.url + "/ui/upload")
    pick_zip(page, tmp_path, build_archive(PEOPLE))
    page.find_element(By.ID, "upload-button").click()
    wait(page, lambda p: "needs a token" in message(p))
    assert message(page) == (
        "The API needs a token for this. Type it above; it is kept only in this browser tab."
    )
    assert page.find_element(By.ID, "token-form").is_displayed()
    assert list(minio.list_objects(worker_settings.source_bucket, recursive=True)) == []
    # A wrong token is named as such, and is never put in a URL.
    give_token(page, "wrong")
    wait(page, lambda p: "A token is in use" in p.find_element(By.ID, "token-reason").text)
    pick_zip(page, tmp_path, build_archive(PEOPLE))
    page.find_element(By.ID, "upload-button").click()
    wait(page, lambda p: "refused the token" in message(p))
    assert "wrong" not in page.current_url


def test_a_zip_over_the_limit_is_refused_with_the_limit(
    page, console, worker_settings, minio, tmp_path
) -> None:
    server = console(replace(worker_settings, api_max_upload_bytes=1000))
    page.get(server.url + "/ui/upload")
    give_token(page, TOKEN)
    wait(page, lambda p: p.find_element(By.ID, "token-reason").text)
    pick_zip(page, tmp_path, build_archive(PEOPLE))
    page.find_element(By.ID, "upload-button").click()
    wait(page, lambda p: "too large" in message(p))
    assert message(page).startswith("The zip is too large for the API: the zip is ")
    assert message(page).endswith("the limit is 1000 (ZIPFLOW_API_MAX_UPLOAD_BYTES).")
    assert list(minio.list_objects(worker_settings.source_bucket, recursive=True)) == []


def test_an_upload_with_minio_down_says_so(page, console, worker_settings, tmp_path) -> None:
    down = replace(worker_settings, s3_endpoint="127.0.0.1:9")  # nothing listens on port 9
    server = console(down)
    page.get(server.url + "/ui/upload")
    give_token(page, TOKEN)
    wait(page, lambda p: p.find_element(By.ID, "token-reason").text)
    pick_zip(page, tmp_path, build_archive(PEOPLE))
    page.find_element(By.ID, "upload-button").click()
    wait(page, lambda p: "not answering" in message(p), seconds=60)
    assert message(page).startswith(
        "Object storage (MinIO) is not answering, so this could not be done. Try again when it is back"
    )


def test_a_read_token_is_asked_for_once_then_sent_with_every_read(
    page, console, settings, minio, tmp_path
) -> None:
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE), "people.zip")
    server = console(replace(settings, api_read_token=READ_TOKEN))
    assert server.request("/stats")[0] == 401
    assert server.request("/")[0] == 200
    page.get(server.url + "/")
    wait(page, lambda p: p.find_element(By.ID, "token-form").is_displayed())
    assert "needs a token" in page.find_element(By.ID, "token-reason").text
    assert "needs a token" in page.find_element(By.ID, "numbers").text
    give_token(page, READ_TOKEN)
    wait(page, lambda p: p.find_element(By.ID, "count").text == str(len(PEOPLE)))
    # Kept for the tab: other pages read with it, the image included.
    page.get(server.url + "/ui/users/1")
    wait(page, lambda p: p.find_elements(By.CSS_SELECTOR, "#picture img"))
    assert READ_TOKEN not in page.current_url
    assert script_errors(page) == []


def test_a_run_page_shows_counts_error_and_rejections(
    page, console, settings, minio, tmp_path
) -> None:
    run = load_archive(settings, minio, tmp_path, build_archive(PEOPLE, BAD_FILES), "people.zip")
    failed = load_archive(settings, minio, tmp_path, b"not a zip", "broken.zip")
    server = console()
    page.get(server.url + f"/ui/runs/{run.id}")
    wait(page, lambda p: p.find_element(By.ID, "run-heading").text == f"Run {run.id}: succeeded")
    rows = page.find_elements(By.CSS_SELECTOR, "table.rejections tbody tr")
    reasons = {rejection["member"]: rejection["reason"] for rejection in run.rejections}
    assert {
        row.find_element(By.CSS_SELECTOR, "td").text: row.text for row in rows
    }.keys() == reasons.keys()
    for row in rows:
        member = row.find_element(By.CSS_SELECTOR, "td").text
        assert reasons[member] in row.text
    assert f"New users\n{len(PEOPLE)}" in page.find_element(By.ID, "run-body").text

    page.get(server.url + f"/ui/runs/{failed.id}")
    wait(page, lambda p: p.find_element(By.ID, "run-heading").text == f"Run {failed.id}: failed")
    assert page.find_element(By.CSS_SELECTOR, "#run-body .error").text == (
        f"The run failed: {failed.error}"
    )
    page.get(server.url + "/ui/runs")
    wait(page, lambda p: p.find_elements(By.CSS_SELECTOR, "#runs tr[data-run-id]"))
    ids = [
        row.get_attribute("data-run-id")
        for row in page.find_elements(By.CSS_SELECTOR, "#runs tr[data-run-id]")
    ]
    assert ids == [str(failed.id), str(run.id)]

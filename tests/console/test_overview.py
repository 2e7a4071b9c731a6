"""The overview in a real browser: its numbers are /stats', its histogram sums to the
count, and a load in progress moves its bar until the outcome shows."""

import threading
import time
from pathlib import Path

from console_support import PEOPLE, build_archive, load_archive, many_people, script_errors, wait
from selenium.webdriver.common.by import By

from shared.archive import DIRECTORY_CHUNK
from shared.models import Run


def shown_numbers(page) -> dict[str, str]:
    wait(page, lambda p: p.find_element(By.ID, "count").text not in ("…", ""))
    return {
        name: page.find_element(By.ID, element).text
        for name, element in (
            ("count", "count"),
            ("average_age", "average-age"),
            ("with_image", "with-image"),
            ("without_image", "without-image"),
        )
    }


def bar_counts(page) -> list[int]:
    wait(page, lambda p: p.find_elements(By.CSS_SELECTOR, "#histogram li[data-count]"))
    bars = page.find_elements(By.CSS_SELECTOR, "#histogram li[data-count]")
    return [int(bar.get_attribute("data-count")) for bar in bars]


def test_overview_numbers_are_those_of_stats(
    page, console, settings, minio, tmp_path: Path
) -> None:
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE), "people.zip")
    server = console()
    for query in ("", "?min_age=30&max_age=60", "?is_image_exists=true", "?q=an"):
        page.get(server.url + "/" + query)
        stats = server.get_json("/stats" + query)
        assert stats["count"] > 0, query
        assert shown_numbers(page) == {
            "count": str(stats["count"]),
            "average_age": f"{stats['average_age']:.2f}",
            "with_image": str(stats["with_image"]),
            "without_image": str(stats["without_image"]),
        }, query
        assert sum(bar_counts(page)) == stats["count"], query
    # Reads are open here: the page does not ask for a token.
    assert not page.find_element(By.ID, "token-form").is_displayed()
    assert script_errors(page) == []


def test_histogram_bars_sum_to_the_count_also_five_years_a_bar(
    page, console, settings, minio, tmp_path: Path
) -> None:
    # Ages across 70 years: one bar per five years.
    load_archive(settings, minio, tmp_path, build_archive(many_people(300)), "many.zip")
    server = console()
    page.get(server.url + "/")
    counts = bar_counts(page)
    assert sum(counts) == 300 == server.get_json("/stats")["count"]
    labels = [bar.text for bar in page.find_elements(By.CSS_SELECTOR, "#histogram .bar-label")]
    assert all("\N{EN DASH}" in label for label in labels), labels
    assert len(counts) <= 16
    caption = page.find_element(By.ID, "histogram-caption").text
    assert caption == "Users per five years of age."


def test_a_filter_in_the_form_changes_the_numbers_and_the_url(
    page, console, settings, minio, tmp_path: Path
) -> None:
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE), "people.zip")
    server = console()
    page.get(server.url + "/")
    assert shown_numbers(page)["count"] == str(len(PEOPLE))
    page.find_element(By.ID, "min_age").send_keys("40")
    page.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait(page, lambda p: p.current_url == server.url + "/?min_age=40")
    assert shown_numbers(page)["count"] == str(server.get_json("/stats?min_age=40")["count"])


def test_a_running_load_shows_moving_progress_then_its_outcome(
    page, console, settings, minio, tmp_path: Path
) -> None:
    """A load reports progress after each chunk of the zip's directory: with two chunks
    and one member more, at one and two chunks read; each report waits a while. The first
    waits longer than the page's idle poll (5 s), which may have just looked before the
    load began; once the page sees a run in progress it polls every second."""
    total = 2 * DIRECTORY_CHUNK + 1
    data = build_archive(many_people(total))
    server = console()
    page.get(server.url + "/")

    def slow(read: int, total: int) -> None:
        if read < total:
            time.sleep(6.5 if read == DIRECTORY_CHUNK else 2.5)

    finished: list[Run] = []
    loader = threading.Thread(
        target=lambda: finished.append(
            load_archive(settings, minio, tmp_path, data, "big.zip", on_progress=slow)
        )
    )
    loader.start()
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 120
    while loader.is_alive() and time.monotonic() < deadline:
        for bar in page.find_elements(By.CSS_SELECTOR, "#runs progress"):
            try:
                seen.add((int(bar.get_attribute("value")), int(bar.get_attribute("max"))))
            except Exception:  # noqa: S112  the table was redrawn while being read
                continue
        time.sleep(0.1)
    loader.join(timeout=60)
    assert finished and finished[0].status == "succeeded", finished
    assert {(DIRECTORY_CHUNK, total), (2 * DIRECTORY_CHUNK, total)} <= seen, seen
    run_id = finished[0].id
    row = f'#runs tr[data-run-id="{run_id}"]'
    wait(
        page,
        lambda p: p.find_element(By.CSS_SELECTOR, row).get_attribute("data-status") == "succeeded",
    )
    assert "succeeded" in page.find_element(By.CSS_SELECTOR, row).text
    assert not page.find_elements(By.CSS_SELECTOR, f"{row} progress")
    # The numbers follow the load that ended.
    wait(page, lambda p: p.find_element(By.ID, "count").text == f"{total:,}")

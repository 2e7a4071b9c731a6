"""The screenshots in docs/, made by the browser the tests drive.

Each run takes them (into a scratch folder) and checks they show what they should;
`SCREENSHOTS_DIR=docs .venv/bin/pytest tests/console/test_screenshots.py` writes the
committed ones.
"""

import os
from pathlib import Path

from console_support import BAD_FILES, PEOPLE, build_archive, load_archive, wait
from selenium.webdriver.common.by import By

from shared.demo import write_demo_archive

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_screenshots_of_the_overview_and_of_a_run_with_rejections(
    page, console, settings, minio, tmp_path: Path
) -> None:
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    rejected = load_archive(
        settings, minio, tmp_path, build_archive(PEOPLE, BAD_FILES), "drops/people.zip"
    )
    demo = tmp_path / "demo.zip"
    write_demo_archive(demo, 1000, seed=7)
    load_archive(settings, minio, tmp_path, demo.read_bytes(), "demo.zip")
    server = console()
    page.set_window_size(1200, 1000)

    page.get(server.url + "/")
    wait(page, lambda p: p.find_element(By.ID, "count").text == "1,000")
    wait(page, lambda p: len(p.find_elements(By.CSS_SELECTOR, "#runs tr[data-run-id]")) == 2)
    overview = folder / "console-overview.png"
    page.save_screenshot(str(overview))

    page.set_window_size(1200, 1250)
    page.get(server.url + f"/ui/runs/{rejected.id}")
    wait(page, lambda p: p.find_elements(By.CSS_SELECTOR, "table.rejections tbody tr"))
    run = folder / "console-run.png"
    page.save_screenshot(str(run))

    for shot in (overview, run):
        data = shot.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 20_000, shot  # a page with content, not a blank one

"""Keyboard and phone: the console works without a mouse and fits a narrow screen."""

from pathlib import Path

from console_support import PEOPLE, build_archive, load_archive, wait
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

PHONE = (390, 844)
PAGES = ("/", "/ui/users", "/ui/users/1", "/ui/runs", "/ui/runs/1", "/ui/upload", "/docs")


def test_every_page_fits_a_phone_screen(page, console, settings, minio, tmp_path: Path) -> None:
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE), "people.zip")
    server = console()
    page.set_window_size(*PHONE)
    try:
        for path in PAGES:
            page.get(server.url + path)
            wait(page, lambda p: p.execute_script("return document.readyState") == "complete")
            width = page.execute_script("return document.documentElement.clientWidth")
            content = page.execute_script("return document.documentElement.scrollWidth")
            assert content <= width, f"{path} is {content}px wide on a {width}px screen"
    finally:
        page.set_window_size(1280, 1000)


def test_search_filter_and_open_a_user_with_the_keyboard_alone(
    page, console, settings, minio, tmp_path: Path
) -> None:
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE), "people.zip")
    server = console()
    page.get(server.url + "/ui/users")
    wait(page, lambda p: p.find_elements(By.CSS_SELECTOR, "#users tbody tr[data-user-id]"))
    body = page.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert page.switch_to.active_element.text == "Skip to the content"
    # Tab through the navigation to the search box, type, and press Enter.
    for _ in range(30):
        if page.switch_to.active_element.get_attribute("id") == "q":
            break
        page.switch_to.active_element.send_keys(Keys.TAB)
    assert page.switch_to.active_element.get_attribute("id") == "q"
    page.switch_to.active_element.send_keys("hopper", Keys.ENTER)
    wait(page, lambda p: p.current_url.endswith("/ui/users?q=hopper"))
    link = wait(page, lambda p: p.find_element(By.CSS_SELECTOR, '#users a[href="/ui/users/5"]'))
    link.send_keys(Keys.ENTER)
    wait(page, lambda p: p.find_element(By.ID, "user-heading").text == "Grace Hopper")

"""The users table and a user's page in a real browser: filters, search, paging to the
last user, hostile names shown as text, and an image or a placeholder, never a broken one."""

from urllib.parse import quote

from console_support import (
    HOSTILE_FIRST,
    HOSTILE_LAST,
    PEOPLE,
    build_archive,
    load_archive,
    many_people,
    script_errors,
    wait,
)
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select


def table_ids(page) -> list[str]:
    rows = page.find_elements(By.CSS_SELECTOR, "#users tbody tr[data-user-id]")
    return [row.get_attribute("data-user-id") for row in rows]


def wait_for_table(page) -> list[str]:
    wait(page, lambda p: p.find_elements(By.CSS_SELECTOR, "#users tbody tr"))
    return table_ids(page)


def test_a_filter_and_a_search_change_the_table(page, console, settings, minio, tmp_path) -> None:
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE), "people.zip")
    server = console()
    page.get(server.url + "/ui/users")
    assert wait_for_table(page) == [person.user_id for person in PEOPLE]

    Select(page.find_element(By.ID, "is_image_exists")).select_by_value("true")
    page.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait(page, lambda p: "is_image_exists=true" in p.current_url)
    with_image = [person.user_id for person in PEOPLE if person.image]
    assert wait_for_table(page) == with_image
    assert page.find_element(By.ID, "summary").text == f"{len(with_image)} users match."

    search = page.find_element(By.ID, "q")
    assert Select(page.find_element(By.ID, "is_image_exists")).first_selected_option.text == (
        "with an image"
    )
    search.send_keys("TANAKA")
    page.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait(page, lambda p: "q=TANAKA" in p.current_url)
    wait(page, lambda p: table_ids(p) == ["7"])
    csv_link = page.find_element(By.ID, "download-csv").get_attribute("href")
    assert csv_link == server.url + "/data?q=TANAKA&is_image_exists=true&format=csv"
    status, body = server.request("/data?q=TANAKA&is_image_exists=true&format=csv")
    assert status == 200
    assert body.decode().splitlines()[1].startswith("7,Sven,Tanaka,")

    page.get(server.url + "/ui/users?q=nobody-at-all")
    wait(page, lambda p: "No user matches" in p.find_element(By.ID, "users").text)
    assert script_errors(page) == []


def test_paging_reaches_the_last_user(page, console, settings, minio, tmp_path) -> None:
    people = many_people(230)
    load_archive(settings, minio, tmp_path, build_archive(people), "many.zip")
    server = console()
    page.get(server.url + "/ui/users?min_age=0")
    seen: list[str] = []
    pages = 0
    while True:
        wait(page, lambda p, seen=seen: table_ids(p) and table_ids(p)[0] not in seen)
        seen += table_ids(page)
        pages += 1
        following = page.find_element(By.ID, "next-page")
        if not following.is_displayed():
            break
        following.click()
    assert pages == 3
    assert seen == [person.user_id for person in people]
    assert seen[-1] == "230"
    # Every page keeps the filter in its URL, and the first-page link leads back.
    assert "min_age=0" in page.current_url
    assert "after=200" in page.current_url
    page.find_element(By.ID, "first-page").click()
    wait(page, lambda p: table_ids(p)[:1] == ["1"])


def test_hostile_names_are_shown_as_text(page, console, settings, minio, tmp_path) -> None:
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE), "people.zip")
    server = console()
    page.get(server.url + "/ui/users")
    wait_for_table(page)
    cells = page.find_elements(By.CSS_SELECTOR, '#users tr[data-user-id="8"] td')
    assert [cell.text for cell in cells[1:3]] == [HOSTILE_FIRST, HOSTILE_LAST]
    assert page.find_elements(By.CSS_SELECTOR, "#users img") == []

    page.get(server.url + "/ui/users/8")
    heading = page.find_element(By.ID, "user-heading")
    wait(page, lambda p: heading.text == f"{HOSTILE_FIRST} {HOSTILE_LAST}")
    assert page.find_elements(By.CSS_SELECTOR, "main img") == []
    assert page.title == f"{HOSTILE_FIRST} {HOSTILE_LAST} · zipflow"
    # An id that looks like markup, in the page's own URL, is text too.
    page.get(server.url + "/ui/users/" + quote("<img src=x onerror=alert(3)>", safe=""))
    wait(page, lambda p: p.find_element(By.ID, "user-heading").text == "No such user")
    assert "<img src=x onerror=alert(3)>" in page.find_element(By.ID, "user").text
    assert page.find_elements(By.CSS_SELECTOR, "main img") == []
    try:
        alert = page.switch_to.alert
        text = alert.text
        alert.dismiss()
        raise AssertionError(f"a script ran: alert({text})")
    except NoAlertPresentException:
        pass
    assert script_errors(page) == []


def test_a_user_page_shows_the_image_or_a_placeholder(
    page, console, settings, minio, tmp_path
) -> None:
    load_archive(settings, minio, tmp_path, build_archive(PEOPLE), "people.zip")
    server = console()
    page.get(server.url + "/ui/users/1")
    image = wait(page, lambda p: p.find_element(By.CSS_SELECTOR, "#picture img"))
    wait(page, lambda p: p.execute_script("return arguments[0].complete", image))
    assert page.execute_script("return arguments[0].naturalWidth", image) > 0
    assert image.get_attribute("src").startswith("blob:")
    fields = page.find_element(By.ID, "fields").text
    assert "Lovelace" in fields and "1990-12-10" in fields

    page.get(server.url + "/ui/users/2")
    wait(page, lambda p: p.find_elements(By.CSS_SELECTOR, "#picture .placeholder"))
    assert page.find_element(By.ID, "picture").text.endswith("This user has no image.")
    assert page.find_elements(By.CSS_SELECTOR, "#picture img") == []

    # The stored png is gone from the bucket: the page says so instead of a broken image.
    minio.remove_object(settings.processed_bucket, "images/3.png")
    page.get(server.url + "/ui/users/3")
    wait(page, lambda p: p.find_elements(By.CSS_SELECTOR, "#picture .placeholder"))
    assert "Not found" in page.find_element(By.ID, "picture").text
    assert page.find_elements(By.CSS_SELECTOR, "#picture img") == []


def test_an_unknown_user_or_run_gets_a_page_that_says_so(page, console, store_db) -> None:
    server = console()
    page.get(server.url + "/ui/users/nobody")
    wait(page, lambda p: p.find_element(By.ID, "user-heading").text == "No such user")
    assert "There is no user with the id “nobody”." in page.find_element(By.ID, "user").text
    for run_id in ("999", "abc", "0"):
        page.get(server.url + f"/ui/runs/{run_id}")
        wait(page, lambda p: p.find_element(By.ID, "run-heading").text == "No such run")
        assert f"There is no run with the id “{run_id}”." in page.find_element(By.ID, "run").text

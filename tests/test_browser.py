"""The console in a real headless Chromium (Selenium), served by uvicorn on loopback with
the sandbox as the API: what a person does, click by click."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from browser import chrome, chromium_missing, in_ci, running_console
from helpers import phone, write_recipients

from campaign import sandbox as fake
from campaign.web import ConsoleConfig

MISSING = chromium_missing()
if MISSING and in_ci():  # CI installs them (.ci/run): a skip there would hide a failure
    pytest.fail(f"browser tests cannot run in CI: {MISSING}", pytrace=False)
pytestmark = [pytest.mark.skipif(MISSING is not None, reason=MISSING or ""), pytest.mark.slow]

if not MISSING:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import Select, WebDriverWait

SENDER_NAME = "Acme Support (+14155551234)"
TEMPLATE_NAME = "appointment_reminder:en"
EVIL = "<script>window.pwned = 1</script>"


@pytest.fixture
def site(tmp_path):
    """The console (over a sandbox at full speed) and a browser; yields (url, driver)."""
    api = fake.Sandbox()
    with fake.running(api) as base_url:
        config = ConsoleConfig(
            api_key=fake.DEFAULT_KEY,
            db=str(tmp_path / "console.db"),
            base_url=base_url,
            upload_dir=tmp_path / "uploads",
        )
        with running_console(config) as url:
            driver = chrome(downloads=tmp_path / "downloads")
            try:
                yield url, driver
                csp = [e for e in driver.get_log("browser") if "Content Security" in e["message"]]
                assert csp == [], csp  # the pages' own scripts and styles obey their policy
            finally:
                driver.quit()


def wait(driver, seconds: float = 20) -> WebDriverWait:
    """A bounded wait; the live views redraw themselves, so an element may go stale."""
    return WebDriverWait(
        driver, seconds, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )


def text_of(driver, selector: str) -> str:
    """The text of the first element matching `selector`, read in one step."""
    return driver.find_element(By.CSS_SELECTOR, selector).text


def fill_new_campaign(url: str, driver, path: Path, name: str | None = None) -> None:
    """Upload `path` on the new-campaign form, picking sender and template by name."""
    driver.get(url + "/campaigns/new")
    driver.find_element(By.NAME, "recipients").send_keys(str(path))
    Select(driver.find_element(By.ID, "sender")).select_by_visible_text(SENDER_NAME)
    Select(driver.find_element(By.ID, "template")).select_by_visible_text(TEMPLATE_NAME)
    if name:
        driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.CSS_SELECTOR, "#new-campaign button[type=submit]").click()


def test_messy_file_shows_its_problems_by_row(site, tmp_path):
    """A file with bad phones: the check page lists each problem with its spreadsheet row."""
    url, driver = site
    messy = write_recipients(tmp_path / "messy.csv", 4, phones=[phone(1), "12", phone(3), "abc"])
    fill_new_campaign(url, driver, messy)
    table = wait(driver).until(seen.presence_of_element_located((By.ID, "problems")))
    rows = [
        r.find_elements(By.TAG_NAME, "td") for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    assert [(cells[0].text, cells[2].text) for cells in rows] == [("3", "12"), ("5", "abc")]
    assert driver.find_element(By.ID, "invalid-rows").text == "2"
    assert driver.find_element(By.ID, "valid-rows").text == "2"


def test_clean_file_is_sent_to_the_end_and_the_report_downloads(site, tmp_path):
    """Upload, pick sender and template by name, start, watch the progress reach the end,
    download the CSV."""
    url, driver = site
    clean = write_recipients(tmp_path / "clean.csv", 8)
    fill_new_campaign(url, driver, clean, name="autumn")
    wait(driver).until(seen.element_to_be_clickable((By.ID, "start"))).click()
    wait(driver).until(
        seen.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-field=state]"), "finished")
    )
    progress = driver.find_element(By.ID, "progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "8"
    about = text_of(driver, "#campaign p.muted")
    assert about.startswith(f"{SENDER_NAME} · {TEMPLATE_NAME} · from clean.csv"), about
    assert driver.find_element(By.CSS_SELECTOR, "[data-count=sent]").text == "8"
    wait(driver).until(seen.presence_of_element_located((By.CSS_SELECTOR, "#chart svg rect.bar")))
    driver.find_element(By.ID, "report-csv").click()
    report = tmp_path / "downloads" / "campaign-1.csv"
    wait(driver).until(lambda _: report.exists() and report.stat().st_size > 0)
    with report.open(newline="") as f:
        lines = list(csv.DictReader(f))
    assert [line["state"] for line in lines] == ["sent"] * 8
    driver.get(url + "/")
    wait(driver).until(lambda d: text_of(d, "#campaigns a.name") == "autumn")


def test_script_in_a_name_is_shown_as_text(site, tmp_path):
    """A campaign name and a cell holding <script> show as text and never run."""
    url, driver = site
    path = tmp_path / "names.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "1", "2"])
        writer.writerow([phone(1), "Ann", "R1", "1 December"])
        writer.writerow([EVIL, "Bob", "R2", "1 December"])
    fill_new_campaign(url, driver, path, name=EVIL)
    value = wait(driver).until(
        seen.presence_of_element_located((By.CSS_SELECTOR, "#problems td.value"))
    )
    assert value.text == EVIL
    driver.find_element(By.NAME, "skip_invalid").click()
    driver.find_element(By.ID, "start").click()
    wait(driver).until(
        seen.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-field=state]"), "finished")
    )
    assert driver.find_element(By.CSS_SELECTOR, "h1.name").text == EVIL
    driver.get(url + "/")
    wait(driver).until(lambda d: text_of(d, "#campaigns[data-drawn=live] a.name") == EVIL)
    assert driver.execute_script("return window.pwned") is None


def test_a_test_send_shows_the_api_answer(site, tmp_path):
    """On the check page: the preview, then a test to my own number, whose answer shows."""
    url, driver = site
    clean = write_recipients(tmp_path / "clean.csv", 3)
    fill_new_campaign(url, driver, clean)
    preview = wait(driver).until(seen.presence_of_element_located((By.ID, "preview")))
    assert preview.text.startswith("Hi R0, this is a reminder")
    driver.find_element(By.ID, "test-to").send_keys(phone(42))
    driver.find_element(By.ID, "test-button").click()
    result = wait(driver).until(seen.presence_of_element_located((By.ID, "test-result")))
    assert result.find_element(By.CSS_SELECTOR, "[data-test=status]").text == "sent"
    answer = result.find_element(By.CSS_SELECTOR, "[data-test=answer]").text
    assert answer.startswith("The API answered: HTTP 200") and "message_sid" in answer
    assert driver.find_element(By.ID, "start").is_enabled()  # nothing started yet

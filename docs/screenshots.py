"""Write screenshots of the web console's main pages to docs/screenshots/ (README shows them).

    python docs/screenshots.py

It serves the console on loopback over the built-in sandbox (whose delivery webhook
posts signed status events back to the console), drives a headless Chromium (Debian's
chromium and chromium-driver) through a few campaigns, and saves: the campaigns list, a
file's check with its preview and a test send, a campaign while it sends, and the HTML
report.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the browser and server helpers

from browser import chrome, chromium_missing, running_console  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as seen  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from campaign import sandbox as fake  # noqa: E402
from campaign.web import ConsoleConfig  # noqa: E402

OUT = HERE / "screenshots"
WEBHOOK_SECRET = b"screenshots-webhook-secret"
FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"]


def write_list(path: Path, n: int, bad: dict[int, str] | None = None, first: int = 0) -> Path:
    """`n` recipients for the demo template; `bad` puts other phones on some rows."""
    bad = bad or {}
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "customer_name", "date"])
        for i in range(n):
            name = f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {chr(65 + i % 26)}."
            writer.writerow(
                [bad.get(i, f"+1415555{first + i:04d}"), name, name.split()[0], "3 December"]
            )
    return path


@contextlib.contextmanager
def delivery_events(api: fake.Sandbox, console_url: str):
    """The sandbox posts signed delivery events of its messages to the console's webhook."""
    with fake.WebhookEmitter(
        console_url + "/webhooks/autocalls", WEBHOOK_SECRET, delays=(0.3, 1.0, 3.0)
    ) as emitter:
        api.webhook = emitter
        yield


def pick(driver, url: str, path: Path, name: str, send_window: str = "") -> None:
    driver.get(url + "/campaigns/new")
    driver.find_element(By.NAME, "recipients").send_keys(str(path))
    Select(driver.find_element(By.ID, "sender")).select_by_visible_text(
        "Acme Support (+14155551234)"
    )
    Select(driver.find_element(By.ID, "template")).select_by_visible_text("appointment_reminder:en")
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "send_window").send_keys(send_window)
    driver.find_element(By.CSS_SELECTOR, "#new-campaign button[type=submit]").click()
    WebDriverWait(driver, 30).until(seen.presence_of_element_located((By.ID, "start-form")))


def shoot(driver, name: str) -> None:
    """The whole page, not only the window (Chromium's own full-page capture)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 2400)}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip | {"scale": 1}},
    )
    (OUT / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
    print(f"wrote {OUT / name}.png")


def main() -> None:
    missing = chromium_missing()
    if missing:
        sys.exit(f"cannot take screenshots: {missing}")
    OUT.mkdir(exist_ok=True)
    faults = fake.Faults(error_500_phones={"+14155550007"})
    api = fake.Sandbox(latency=(0.05, 0.3), faults=faults)
    with tempfile.TemporaryDirectory() as tmp, fake.running(api) as base_url:
        work = Path(tmp)
        config = ConsoleConfig(
            api_key=fake.DEFAULT_KEY,
            db=str(work / "console.db"),
            base_url=base_url,
            upload_dir=work / "uploads",
            webhook_secret=WEBHOOK_SECRET,
        )
        with running_console(config) as url, delivery_events(api, url):
            driver = chrome(downloads=work)
            wait = WebDriverWait(driver, 120, poll_frequency=0.2)
            try:
                # 1. A finished campaign with a few failures, skipped rows and one unknown,
                # checked first: its preview, and a test send to the operator's number.
                bad = {3: fake.TWILIO_ERROR_PHONE, 5: "4.47911E+11", 9: "12"}
                pick(driver, url, write_list(work / "november-customers.csv", 24, bad), "november")
                driver.find_element(By.ID, "test-to").send_keys("+14155550199")
                driver.find_element(By.ID, "test-button").click()
                wait.until(seen.presence_of_element_located((By.ID, "test-result")))
                shoot(driver, "validation")
                driver.find_element(By.NAME, "skip_invalid").click()
                driver.find_element(By.ID, "start").click()
                finished = (By.CSS_SELECTOR, "[data-field=state]")
                wait.until(seen.text_to_be_present_in_element(finished, "finished"))
                api.webhook.wait_idle(30)  # the delivery events, before the report
                read = (By.CSS_SELECTOR, "[data-delivery=read]")
                wait.until(lambda d: d.find_element(*read).text not in ("", "0"))
                driver.find_element(By.ID, "report-html").click()
                report = work / "campaign-1.html"
                wait.until(lambda _: report.exists() and report.stat().st_size > 0)

                # 2. A bigger one, caught while it sends.
                pick(
                    driver,
                    url,
                    write_list(work / "december-newsletter.csv", 120, first=100),
                    "december",
                )
                driver.find_element(By.ID, "start").click()
                wait.until(
                    lambda d: int(d.find_element(By.CSS_SELECTOR, "[data-count=sent]").text) >= 40
                )
                shoot(driver, "campaign")

                # 3. One whose recipients are asleep: it waits for their daytime.
                asleep = (datetime.now(ZoneInfo("America/Los_Angeles")) + timedelta(hours=6)).hour
                window = f"{asleep:02d}:00-{(asleep + 2) % 24:02d}:00"
                path = write_list(work / "breakfast-offer.csv", 12, first=300)
                pick(driver, url, path, "breakfast", send_window=window)
                driver.find_element(By.ID, "start").click()
                wait.until(seen.text_to_be_present_in_element(finished, "waiting"))
                driver.get(url + "/")
                wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "[data-drawn=live]")))
                shoot(driver, "list")
                driver.get(report.as_uri())
                shoot(driver, "report")
            finally:
                driver.quit()


if __name__ == "__main__":
    main()

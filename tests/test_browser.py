"""Every framework's rendered UI in a real headless Chromium: create an item through the page, see it listed.

The setup installs Debian's chromium and chromium-driver when they are missing. The browser only
talks to the app on 127.0.0.1. Each page is served with its security headers, and the browser's console must
report no Content-Security-Policy violation and no 404 (a page that names no icon makes every load ask for
/favicon.ico); the app's access log shows none either. Screenshots of each first screen, empty and with an
item, are kept in artifacts/screenshots/ (the README shows copies in docs/screenshots/).
"""

import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.localapp import running_local_app
from tests.support.page import instrument, settled_text, until
from tests.support.template import ROOT, render
from tests.support.waiting import HANG_GUARD

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def ensure_chromium() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    assert shutil.which("apt-get") and os.geteuid() == 0, "needs Debian's chromium and chromium-driver (apt-get)"
    lock = Path("/tmp/lakebase-app-apt.lock")
    with lock.open("w") as handle:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX)  # parallel workers install once
        if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
                check=True,
                env=env,
                capture_output=True,
            )


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1000,640",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, where CSP violations show
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    instrument(driver)
    try:
        yield driver
    finally:
        driver.quit()


def by_label_text(driver: WebDriver, css: str, text: str) -> Callable[[WebDriver], bool]:
    return lambda _: any(text in element.text for element in driver.find_elements(By.CSS_SELECTOR, css))


def add_item(driver: WebDriver, framework: str, title: str) -> None:
    """Type a title and press Add; each element is waited for (a page may render its button after its input)."""
    if framework in ("flask", "fastapi"):
        box = until(driver, lambda d: d.find_element(By.ID, "title"))
        box.send_keys(title)
        until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#new-item button[type=submit]")).click()
        until(driver, by_label_text(driver, "#items li span", title))
    elif framework == "dash":
        box = until(driver, lambda d: d.find_element(By.ID, "new-title"))
        box.send_keys(title)
        until(driver, lambda d: d.find_element(By.ID, "add")).click()
        until(driver, by_label_text(driver, "#items", title))
    elif framework == "gradio":
        box = until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "textarea, input[type=text]"))
        box.send_keys(title)
        until(driver, lambda d: d.find_element(By.XPATH, "//button[normalize-space()='Add']")).click()
        until(driver, lambda d: title in d.find_element(By.TAG_NAME, "body").text)
    else:  # streamlit
        box = until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='New item']"))
        box.send_keys(title, Keys.TAB)
        # Streamlit takes a form field's value when the field loses focus: submit only once it has
        until(driver, lambda d: d.switch_to.active_element != box and box.get_attribute("value") == title)
        until(driver, lambda d: d.find_element(By.XPATH, "//button[.//*[normalize-space()='Add']]")).click()
        until(driver, lambda d: title in d.find_element(By.TAG_NAME, "body").text)
    # the input is cleared after Add, ready for the next item (Streamlit re-renders it: look it up again)
    css = {"flask": "#title", "fastapi": "#title", "dash": "#new-title", "gradio": "textarea, input[type=text]"}
    selector = css.get(framework, "input[aria-label='New item']")
    until(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector).get_attribute("value") == "")


def delete_row(driver: WebDriver, framework: str, title: str) -> None:
    """Delete an item with the button on its own row: no id is typed, none is shown."""

    def click_delete(d: WebDriver) -> bool:
        if framework == "streamlit":
            row = d.find_element(By.XPATH, f"//div[@data-testid='stHorizontalBlock'][contains(., '{title}')]")
            row.find_element(By.XPATH, ".//button[.//*[normalize-space()='Delete']]").click()
        else:
            row = next((li for li in d.find_elements(By.CSS_SELECTOR, "#items li") if title in li.text), None)
            if row is None:
                return False
            row.find_element(By.XPATH, ".//button[normalize-space()='Delete']").click()
        return True

    until(driver, click_delete)
    until(driver, lambda d: title not in d.find_element(By.TAG_NAME, "body").text)


def not_found(console: list[str], log: str) -> list[str]:
    """What the page asked for and did not get: 404s in the browser's console and in the app's access log."""
    return [line for line in console if "status of 404" in line] + re.findall(r'.*" 404\b.*', log)


def assert_served_with_security_headers(url: str, framework: str) -> None:
    with urllib.request.urlopen(url, timeout=HANG_GUARD) as response:
        headers = response.headers
    if framework == "streamlit":  # Streamlit offers no way to add a header (README: Security)
        return
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), dict(headers)
    assert headers.get("X-Content-Type-Options") == "nosniff", dict(headers)


EMPTY = "Nothing here yet"


@pytest.mark.parametrize("framework", ["flask", "fastapi", "dash", "gradio", "streamlit"])
def test_ui_creates_and_lists_an_item_in_a_real_browser(tmp_path: Path, browser: WebDriver, framework: str) -> None:
    driver = "asyncpg" if framework in ("fastapi", "gradio") else "psycopg3"
    root = render(tmp_path, framework=framework, driver=driver, project_name=f"Browser {framework}")
    title = f"bought milk via {framework}"
    with running_local_app(root, tmp_path) as app:
        started = time.monotonic()
        assert_served_with_security_headers(app.url + "/", framework)
        browser.get(app.sign_in_url)  # the address run.py prints, with its key
        until(browser, lambda d: EMPTY in d.find_element(By.TAG_NAME, "body").text, "the empty state")
        until(browser, lambda d: "local.user@example.com" in d.find_element(By.TAG_NAME, "body").text, "who")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / f"{framework}-empty.png"))  # what a first visit shows
        add_item(browser, framework, title)
        browser.refresh()  # listed from the database, not just echoed by the page
        until(browser, lambda d: title in d.find_element(By.TAG_NAME, "body").text)
        text = settled_text(browser)
        assert f"Browser {framework}" in text and "local.user@example.com" in text and EMPTY not in text, text
        assert "UTC" in text or framework in ("flask", "fastapi"), text  # a date a person reads, not ISO
        assert "T" not in "".join(w for w in text.split() if w[:4].isdigit() and "-" in w), text  # no 2026-11-30T..
        browser.save_screenshot(str(SCREENSHOTS / f"{framework}.png"))
        if framework != "gradio":  # Gradio picks the row by title in a dropdown; tests/test_e2e.py drives it
            keeper = f"kept via {framework}"
            add_item(browser, framework, keeper)
            delete_row(browser, framework, title)
            browser.refresh()  # the database, not the page, says what is left
            until(browser, lambda d: keeper in d.find_element(By.TAG_NAME, "body").text)
            assert title not in browser.find_element(By.TAG_NAME, "body").text
        console = [entry["message"] for entry in browser.get_log("browser")]  # reading it empties it
        violations = [line for line in console if "Content Security Policy" in line]
        assert not violations, violations
        log = app.log.read_text(errors="replace")
        assert framework not in ("flask", "fastapi") or '"GET /api/items' in log, log[-2000:]  # it logs requests
        missing = not_found(console, log)  # e.g. the /favicon.ico a browser asks for when the page names none
        assert not missing, missing
        print(f"{framework}: browser create+list {time.monotonic() - started:.1f} s")

"""Waiting on what a page in the browser reports, not on a fixed patience (for tests/test_browser.py).

`until(driver, condition)` polls the condition. While it is false the page is asked whether it is still at work:
the document loading; a fetch or XMLHttpRequest of the page in flight (counted by a script installed before the
page's own, see `instrument`); Dash's loading screen (`._dash-loading`, dash/dash.py's index page, while its renderer script is there) or a callback in
flight (the title "Updating...", Dash's `update_title` default, and `data-dash-is-loading` on the component); a
Streamlit script run or reconnect (`stApp`'s data-test-script-state / data-test-connection-state, set by
Streamlit's frontend bundle, static/js/index.*.js in 1.67); a Gradio event (a `data-testid=status-tracker`
without its `hide` class, Gradio 6's frontend). A busy machine only makes that work take longer, so it is waited
for. The wait fails when the page has been idle for IDLE_TURNS turns of its event loop (two animation frames each)
with the condition still false: the page says it has finished and what the test waits for is not there.
HANG_GUARD only ends a page that never stops working.
"""

import time
from collections.abc import Callable
from typing import TypeVar

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.waiting import HANG_GUARD

T = TypeVar("T")
IDLE_TURNS = 20

# Installed before any script of the page: counts its HTTP requests still in flight.
COUNT_REQUESTS = """
window.__requestsInFlight = 0;
const started = () => { window.__requestsInFlight += 1; };
const ended = () => { window.__requestsInFlight -= 1; };
const fetchOfPage = window.fetch;
window.fetch = function (...args) {
  started();
  return fetchOfPage.apply(this, args).finally(ended);
};
const sendOfPage = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (...args) {
  started();
  this.addEventListener("loadend", ended, { once: true });
  return sendOfPage.apply(this, args);
};
"""

# What the page says it is still doing ("" when idle), after two animation frames (a turn of its event loop).
AT_WORK = """
const done = arguments[arguments.length - 1];
requestAnimationFrame(() => requestAnimationFrame(() => {
  const at = (selector) => document.querySelector(selector) !== null;
  const app = document.querySelector("[data-testid=stApp]");
  done(
    document.readyState !== "complete" ? "loading the document"
    : (window.__requestsInFlight || 0) > 0 ? "requests in flight"
    : at("._dash-loading") && window.DashRenderer ? "Dash is loading"  // without its renderer it never will
    : document.title === "Updating..." || at("[data-dash-is-loading=true]") ? "a Dash callback"
    : app && app.dataset.testScriptState !== "notRunning" ? "Streamlit script " + app.dataset.testScriptState
    : app && app.dataset.testConnectionState !== "CONNECTED" ? "Streamlit " + app.dataset.testConnectionState
    : at("[data-testid=status-tracker]:not(.hide)") ? "a Gradio event"
    : ""
  );
}));
"""


def instrument(driver: WebDriver) -> None:
    """Count every page's requests from its first script on; give pages the hang guard, not a short patience."""
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_REQUESTS})
    driver.set_page_load_timeout(HANG_GUARD)
    driver.set_script_timeout(HANG_GUARD)


def at_work(driver: WebDriver) -> str:
    return driver.execute_async_script(AT_WORK)


def until(driver: WebDriver, condition: Callable[[WebDriver], T], what: str = "") -> T:
    """The condition's first true value; an element the page re-rendered while it was read means: look again."""
    idle_turns, started = 0, time.monotonic()
    while True:
        try:
            value = condition(driver)
        except (NoSuchElementException, StaleElementReferenceException):
            value = None
        if value:
            return value
        working_on = at_work(driver)
        idle_turns = 0 if working_on else idle_turns + 1
        if idle_turns >= IDLE_TURNS:
            shown = driver.execute_script("return document.body ? document.body.innerText : ''")
            raise AssertionError(
                f"the page finished its work without {what or condition}; it shows:\n{shown[-3000:]}\n"
                + what_it_loaded(driver)
            )
        if time.monotonic() - started > HANG_GUARD:
            raise AssertionError(
                f"the page was still at work ({working_on}) after {HANG_GUARD:.0f} s (a hang)\n{what_it_loaded(driver)}"
            )
        time.sleep(0.05)


def settled_text(driver: WebDriver) -> str:
    """The page's text once the page says its work is done (a Streamlit run shows a row before its date)."""
    until(driver, lambda d: not at_work(d), "the end of its work")
    return driver.find_element(By.TAG_NAME, "body").text


def what_it_loaded(driver: WebDriver) -> str:
    """The page's resources (status, milliseconds) and its console: what a hang report needs."""
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".map(e => `${e.responseStatus} ${Math.round(e.duration)} ms ${e.name}`)"
    )
    console = [f"{entry['level']} {entry['message']}" for entry in driver.get_log("browser")]
    return "resources:\n" + "\n".join(resources) + "\nconsole:\n" + "\n".join(console)

"""Headless Chromium for the UI test: Debian's chromium and chromedriver, driven by Selenium."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# No first-run dialogs, and no background connections this closed network refuses.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A headless Chromium session with a fresh profile, closed on exit."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver: webdriver.Chrome, url: str) -> None:
    """Load ``url`` afresh: a change of the address's ``#`` part alone would keep the
    single-page app's state of the page before."""
    driver.get("about:blank")
    driver.get(url)


def page_text(driver: webdriver.Chrome) -> str:
    """What a person reads on the page now."""
    return driver.find_element(By.TAG_NAME, "body").text


def wait_for_text(driver: webdriver.Chrome, *texts: str, timeout: float = 60) -> str:
    """Wait until every one of ``texts`` is on the page; returns the page's text.

    Raises:
        AssertionError: naming what is missing and showing what is there.
    """
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.25).until(
            lambda d: all(text in page_text(d) for text in texts)
        )
    except TimeoutException:
        shown = page_text(driver)
        missing = [text for text in texts if text not in shown]
        raise AssertionError(f"{driver.current_url}: {missing} not shown in:\n{shown}") from None
    return page_text(driver)


def click_text(driver: webdriver.Chrome, text: str, timeout: float = 60) -> None:
    """Click the first visible element whose own text is ``text``."""
    xpath = f"//*[normalize-space(text())='{text}']"
    WebDriverWait(driver, timeout).until(
        lambda d: any(e.is_displayed() for e in d.find_elements(By.XPATH, xpath))
    )
    element = next(e for e in driver.find_elements(By.XPATH, xpath) if e.is_displayed())
    driver.execute_script("arguments[0].click();", element)


def screenshot(driver: webdriver.Chrome, path: Path, settle: float = 1.0) -> None:
    """Save what the window shows as a PNG (after ``settle`` seconds of rendering)."""
    time.sleep(settle)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))

"""The operator console in a real headless browser: Debian's chromium driven by selenium
(chromedriver from Debian's chromium-driver; nothing is downloaded). `make setup` installs
both. The page's numbers match `usage()`, an override set from the page takes effect, a
client token sees no admin controls, and values from the API are shown as text, not markup.
Screenshots land in tests/artifacts/ (gitignored)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from live import ADMIN_TOKEN, CLIENT_TOKEN, LiveServer
from redis_proc import RedisProcess

import guard

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,1000",
]


@pytest.fixture(scope="module")
def console_server(redis_server: RedisProcess) -> Iterator[str]:
    server = LiveServer(redis_server.url, workers=1).start()
    yield server.url
    server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
        pytest.fail("chromium and chromium-driver are needed: run `make setup` (apt-get)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="guard-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def until(what: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `what` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = what()
            if last:
                return last
        except Exception as exc:  # the page is mid-render: try again
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out; last: {last!r}")


def login(driver: Any, url: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    box = until(lambda: driver.find_element(By.ID, "token"))
    until(lambda: driver.find_element(By.ID, "login").is_displayed())
    box.send_keys(token)
    driver.find_element(By.ID, "login-go").click()
    until(lambda: driver.execute_script("return document.body.dataset.ready === '1'"))


def click(driver: Any, selector: str) -> None:
    """Click the element matching `selector` now (rows are re-rendered every poll, so a
    found-then-clicked element could be stale)."""
    until(
        lambda: driver.execute_script(
            "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e;",
            selector,
        )
    )


def shown(driver: Any) -> dict[tuple[str, str], dict[str, str]]:
    """The levels table as the page shows it: (level, name) -> {field: text}."""
    rows = driver.execute_script(
        """return Array.from(document.querySelectorAll('#levels tbody tr')).map(tr => {
             const f = {}; tr.querySelectorAll('[data-field]').forEach(e => f[e.dataset.field] =
             e.textContent); return [tr.dataset.level, tr.dataset.name, f]; });"""
    )
    return {(lvl, name): f for lvl, name, f in rows}


def expected(u: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    def lim(v: dict[str, Any]) -> str:
        m = v["override"]["max_concurrency"] if v.get("override") else v["max_concurrency"]
        return "∞" if m is None else str(m)

    out = {("account", ""): (str(u["account"]["in_use"]), lim(u["account"]))}
    for kind in ("groups", "functions"):
        for n, v in u[kind].items():
            out[(kind[:-1], n)] = (str(v["in_use"]), lim(v))
    return out


def test_console_admin_and_client(
    console_server: str, browser: Any, g: guard.Guard, ns: str
) -> None:
    from selenium.webdriver.common.by import By

    g.admin.set_namespace(max_concurrency=20)
    g.admin.put_group("api", reserved=5, members=["login"])
    g.admin.put_group("etl", max_concurrency=10, members=["ingest"])
    g.admin.put_function("ingest", max_concurrency=4)
    held = [g.acquire("ingest", ttl=120) for _ in range(4)] + [g.acquire("login", ttl=120)]
    with pytest.raises(guard.Throttled):
        g.acquire("ingest", ttl=120)
    url = f"{console_server}/?ns={ns}"

    login(browser, url, ADMIN_TOKEN)
    want = expected(g.admin.usage())

    def matches() -> bool:
        got = {
            (lvl, "" if lvl == "account" else n): (f["in-use"], f["max"])
            for (lvl, n), f in shown(browser).items()
        }
        return got == want

    until(matches)
    rows = shown(browser)
    assert rows[("function", "ingest")]["throttles"] in ("0", "1")  # window starts at page open
    assert rows[("group", "api")]["reserved"] == "5 (4 free)"

    # An override from the page: pause ingest for 5 minutes.
    browser.find_element(By.ID, "ov-name").send_keys("ingest")
    browser.find_element(By.ID, "ov-minutes").clear()
    browser.find_element(By.ID, "ov-minutes").send_keys("5")
    browser.find_element(By.ID, "ov-reason").send_keys("<b>from the page</b>")
    browser.find_element(By.ID, "ov-set").click()
    until(lambda: g.admin.overrides())
    (o,) = g.admin.overrides()
    assert (o["name"], o["max_concurrency"], o["actor"]) == ("ingest", 0, "GUARD_ADMIN_TOKENS[0]")
    assert 290 < o["seconds_left"] <= 300
    for lease in held[:2]:
        lease.release()
    with pytest.raises(guard.Throttled):  # room under the setting (4), but paused
        g.acquire("ingest", ttl=120)
    until(lambda: "max 0 for" in shown(browser)[("function", "ingest")]["override"])
    # Text from the API stays text: the reason is shown literally, no <b> element is made.
    cell = until(lambda: browser.find_element(By.CSS_SELECTOR, "#overrides tbody tr"))
    assert "<b>from the page</b>" in cell.text
    assert browser.find_elements(By.CSS_SELECTOR, "#overrides b") == []
    until(lambda: "override" in browser.find_element(By.ID, "audit").text)
    # Change a max: the row's edit button fills the form.
    click(browser, 'tr[data-level="group"][data-name="etl"] [data-action="edit"]')
    assert browser.find_element(By.ID, "mx-name").get_attribute("value") == "etl"
    assert browser.find_element(By.ID, "mx-kind").get_attribute("value") == "group"
    browser.find_element(By.ID, "mx-max").send_keys("7")
    browser.find_element(By.ID, "mx-set").click()
    until(lambda: g.admin.get_group("etl")["max_concurrency"] == 7)
    until(lambda: shown(browser)[("group", "etl")]["max"] == "7")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "console-admin.png"))
    # Resume from the page.
    click(browser, 'tr[data-level="function"][data-name="ingest"] [data-action="resume"]')
    until(lambda: g.admin.overrides() == [])
    g.acquire("ingest", ttl=120).release()

    # A client token: the same numbers, no admin controls at all.
    browser.execute_script("sessionStorage.clear()")
    login(browser, url, CLIENT_TOKEN)
    until(lambda: "(client)" in browser.find_element(By.ID, "who").text)
    want = expected(g.admin.usage())
    until(matches)
    for sel in ("[data-action]", "#override-form", "#max-form", "#audit", ".admin-only"):
        assert browser.find_elements(By.CSS_SELECTOR, sel) == [], sel
    browser.save_screenshot(str(ARTIFACTS / "console-client.png"))

    # A wrong token is refused and the page asks again.
    browser.execute_script("sessionStorage.clear()")
    browser.get(url)
    until(lambda: browser.find_element(By.ID, "login").is_displayed())
    browser.find_element(By.ID, "token").send_keys("wrong")
    browser.find_element(By.ID, "login-go").click()
    until(lambda: "refused" in browser.find_element(By.ID, "login-error").text)
    for lease in held[2:]:
        lease.release()

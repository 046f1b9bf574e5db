"""The console in a real browser: Debian's Chromium driven by Selenium through chromedriver, against
real processes (web, worker, redis-server) and the chat sink. Nothing is fetched: Selenium is given
both binaries, so its manager downloads nothing.

Screenshots of each page go to $CONSOLE_SCREENSHOTS when it is set (a folder), to be looked at.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from service.simulators.sink import Sink, create_sink
from tests.conftest import free_port, fresh, load_fixture
from tests.e2e.conftest import service_env
from tests.e2e.processes import Service, cli
from tests.server import running
from tests.service.conftest import signed
from tests.waiting import wait_until
from workers.delivery.dead_letters import DeadLetters
from workers.ref_states import read_states
from workers.store import EventStore

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--window-size=1400,1000",
)  # fmt: skip
TOKEN = "admin-token-value-of-at-least-32-characters"
XSS = "<img src=x onerror=alert(1)>"
ROUTES = """\
handlers:
  ops: {{type: slack, url: "{sink}/slack/ops"}}
subscriptions:
  - {{name: all, handlers: [ops]}}
"""
WAIT = 60.0
STARTUP = 120.0  # seconds for a process to answer: generous, the suite shares a small machine


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for a driver online
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (*ARGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


@dataclass
class System:
    base: str
    sink: Sink
    redis: redis.Redis

    def post(self, **changes: Any) -> dict[str, Any]:
        """A signed workflow-completed webhook with `subject`, `branch`, `number` or `status` changed."""
        payload = fresh(
            {**load_fixture("workflow-completed.failed.github-oauth.derived.json"), "id": str(uuid.uuid4())}
        )
        for key, value in changes.items():
            if key == "subject":
                payload["pipeline"]["vcs"]["commit"]["subject"] = value
            elif key == "branch":
                payload["pipeline"]["vcs"]["branch"] = value
            elif key == "number":
                payload["pipeline"]["number"] = value
            elif key == "status":
                payload["workflow"]["status"] = value
        answer = httpx.post(self.base + "/webhooks/circleci", **signed(payload))
        assert answer.status_code == 202, answer.text
        return {"event_id": answer.json()["event_id"], **payload}

    def wait_outcome(self, event_id: str, outcome: str) -> None:
        store = EventStore(self.redis)

        def done() -> bool:
            record = store.record(event_id) or {}
            return (record.get("deliveries") or {}).get("ops", {}).get("outcome") == outcome

        wait_until(done, f"event {event_id} {outcome} to ops", WAIT)


@pytest.fixture
def system(tmp_path: Path, redis_url: str) -> Iterator[System]:
    """web and worker processes, started together (a starved machine takes long to import them)."""
    sink_app = create_sink()
    with running(sink_app) as sink_url:
        routes = tmp_path / "routes.yaml"
        routes.write_text(ROUTES.format(sink=sink_url))
        port = free_port()
        env = service_env(redis_url, ROUTES_FILE=str(routes), ADMIN_TOKEN=TOKEN, PORT=str(port))
        web = Service(cli("web"), env=env, log_path=tmp_path / "web.log").start()
        worker = Service(cli("worker"), env=env, log_path=tmp_path / "worker.log").start()
        client = redis.Redis.from_url(redis_url)
        try:
            web.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=STARTUP)
            yield System(f"http://127.0.0.1:{port}", sink_app.state.sink, client)
        finally:
            client.close()
            worker.stop()
            web.stop()


@pytest.fixture
def page(browser: webdriver.Chrome, system: System) -> Iterator[webdriver.Chrome]:
    browser.delete_all_cookies()
    yield browser
    browser.delete_all_cookies()


def log_in(driver: webdriver.Chrome, system: System, path: str = "/ui/") -> None:
    driver.get(system.base + path)
    assert "/ui/login" in driver.current_url, "no session: the login form, nothing else"
    assert driver.find_elements(By.CSS_SELECTOR, "main table") == []
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form[action='/ui/login'] button").click()
    wait_until(lambda: "/ui/login" not in driver.current_url, "the login", WAIT)


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    folder = os.environ.get("CONSOLE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def no_alert(driver: webdriver.Chrome) -> None:
    try:
        WebDriverWait(driver, 1).until(expected_conditions.alert_is_present())
    except TimeoutException:
        return
    raise AssertionError("a script from CircleCI's data ran: an alert is open")


def row_ids(driver: webdriver.Chrome) -> list[str]:
    links = driver.find_elements(By.CSS_SELECTOR, "a.event-link")
    return [str(a.get_attribute("href")).rsplit("/", 1)[1] for a in links]


def test_log_in_and_filter_events(page: webdriver.Chrome, system: System) -> None:
    failed = system.post(branch="main")
    passed = system.post(branch="release", status="success", number=132)
    system.wait_outcome(failed["event_id"], "delivered")
    system.wait_outcome(passed["event_id"], "delivered")
    log_in(page, system, "/ui/events")
    assert page.current_url.endswith("/ui/events")
    assert row_ids(page) == [passed["event_id"], failed["event_id"]]
    screenshot(page, "events")
    Select(page.find_element(By.NAME, "status")).select_by_value("success")
    page.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait_until(lambda: "status=success" in page.current_url, "the filtered page", WAIT)
    assert row_ids(page) == [passed["event_id"]]
    page.find_element(By.NAME, "branch").send_keys("main")
    page.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait_until(lambda: "branch=main" in page.current_url, "the filtered page", WAIT)
    assert row_ids(page) == [] and "No event matches" in page.find_element(By.TAG_NAME, "main").text
    page.get(system.base + "/ui/")
    screenshot(page, "overview")
    page.get(system.base + "/ui/config")
    screenshot(page, "config")
    assert "ops" in page.find_element(By.TAG_NAME, "main").text and "/slack/ops" not in page.page_source  # redacted


def test_open_an_event_and_read_its_attempts(page: webdriver.Chrome, system: System) -> None:
    system.sink.add_fault(path="/slack/ops", kind="server_error", times=1)  # one failed attempt, then delivered
    event = system.post()
    system.wait_outcome(event["event_id"], "delivered")
    log_in(page, system, "/ui/events")
    page.find_element(By.CSS_SELECTOR, "a.event-link").click()
    wait_until(lambda: event["event_id"] in page.current_url, "the event page", WAIT)
    attempts = [li.text for li in page.find_elements(By.CSS_SELECTOR, "ol.timeline li.attempt")]
    assert len(attempts) == 2
    assert "ops" in attempts[0] and "retrying" in attempts[0] and "HTTP 500" in attempts[0]
    assert "ops" in attempts[1] and "delivered" in attempts[1]
    screenshot(page, "event")


def test_replay_a_dead_letter_and_see_it_delivered(page: webdriver.Chrome, system: System) -> None:
    system.sink.add_fault(path="/slack/ops", kind="bad_request", times=1)  # refused: dead-lettered at once
    event = system.post()
    system.wait_outcome(event["event_id"], "rejected")
    log_in(page, system, "/ui/dead-letters")
    rows = page.find_elements(By.CSS_SELECTOR, "table.letters tbody tr")
    assert len(rows) == 1 and "rejected" in rows[0].text
    screenshot(page, "dead-letters")
    rows[0].find_element(By.CSS_SELECTOR, "button.replay").click()
    wait_until(lambda: "done=letter-replayed" in page.current_url, "the replay", WAIT)
    assert "queued again" in page.find_element(By.CSS_SELECTOR, ".notice").text
    system.wait_outcome(event["event_id"], "delivered")
    assert len(system.sink.delivered("/slack/ops")) == 1
    assert DeadLetters(system.redis, ttl=60).list() == []
    page.get(f"{system.base}/ui/events/{event['event_id']}")
    outcomes = page.find_elements(By.CSS_SELECTOR, "table.deliveries .outcome")
    assert [o.text for o in outcomes] == ["delivered"]


def test_a_dead_letter_fires_its_alert_on_the_overview(page: webdriver.Chrome, system: System) -> None:
    log_in(page, system, "/ui/")
    rule = "tr[data-alert='CircleCIEventsDeadLetters']"
    assert "alert-inactive" in str(page.find_element(By.CSS_SELECTOR, rule).get_attribute("class"))
    system.sink.add_fault(path="/slack/ops", kind="bad_request", times=1)  # refused: dead-lettered at once
    event = system.post()
    system.wait_outcome(event["event_id"], "rejected")
    page.refresh()
    row = page.find_element(By.CSS_SELECTOR, rule)
    assert "alert-firing" in str(row.get_attribute("class"))
    assert "firing" in row.text and "circleci-events dead-lettered deliveries (rejected)" in row.text
    screenshot(page, "overview-alert")


def test_branch_grid_turns_red_then_green(page: webdriver.Chrome, system: System) -> None:
    red = system.post(branch="main", number=200)
    wait_until(lambda: read_states(system.redis), "the state of main", WAIT)
    log_in(page, system, "/ui/branches")
    [cell] = page.find_elements(By.CSS_SELECTOR, ".grid .cell")
    assert "red" in str(cell.get_attribute("class")) and "#200" in cell.text
    screenshot(page, "branches-red")
    system.post(branch="main", number=201, status="success")
    wait_until(lambda: [s.status for s in read_states(system.redis)] == ["success"], "main fixed", WAIT)
    page.refresh()
    [cell] = page.find_elements(By.CSS_SELECTOR, ".grid .cell")
    assert "green" in str(cell.get_attribute("class")) and "#201" in cell.text and "last good: #201" in cell.text
    screenshot(page, "branches-green")
    assert red["event_id"]


def test_a_commit_subject_with_markup_executes_nothing(page: webdriver.Chrome, system: System) -> None:
    event = system.post(subject=XSS, branch=XSS)
    system.wait_outcome(event["event_id"], "delivered")
    log_in(page, system, f"/ui/events/{event['event_id']}")
    for path in (f"/ui/events/{event['event_id']}", "/ui/events", "/ui/branches"):
        page.get(system.base + path)
        no_alert(page)
        assert page.find_elements(By.CSS_SELECTOR, "main img") == [], path
        assert XSS in page.find_element(By.TAG_NAME, "main").text, path
    page.get(f"{system.base}/ui/events/{event['event_id']}")
    screenshot(page, "event-xss")

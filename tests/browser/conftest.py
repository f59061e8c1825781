"""Real browser tests: Debian's Chromium driven by Playwright (its own browser download is not
reachable here), against real server processes. Every request the page makes to anything but
this machine is blocked and counted: the count must stay zero (the service runs air-gapped).
Screenshots of each step go to test-artifacts/browser/."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, Route, sync_playwright

from tests.support import REPO, clear_queue, free_port, make_settings, settings_env, start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts" / "browser"
TOKEN = "browser-test-token-4c1d"
# quiet, headless, no background traffic of Chromium's own; media may play without a gesture
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip
LOCAL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?/|^(data|blob):")


@dataclass
class Server:
    url: str
    token: str | None = None

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@dataclass
class Tab:
    """A page whose off-machine requests are blocked and counted, with numbered screenshots."""

    page: Page
    name: str
    outside: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # script errors on the page, caught or not
    shots: int = 0

    def shot(self, step: str) -> Path:
        self.shots += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{self.shots:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _start(root: Path, **env: str) -> Iterator[Server]:
    settings = make_settings(root / "data", f"sqlite:///{root / 'records.db'}")
    port = free_port()
    process = start_server({**settings_env(settings), **env}, root / "server.log", port, timeout=180, worker_ready=True)
    try:
        yield Server(f"http://127.0.0.1:{port}", env.get("AUTH__BEARER_TOKEN"))
    finally:
        process.stop()
        clear_queue(settings.queue_name)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Auth off; uploads capped at 2 MB (the page checks the cap before sending)."""
    yield from _start(tmp_path_factory.mktemp("browser-server"), MAX_UPLOAD_SIZE_MB="2")


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _start(tmp_path_factory.mktemp("browser-auth"), AUTH__ENABLED="true", AUTH__BEARER_TOKEN=TOKEN)


# per module, not per session: Playwright's sync API keeps an event loop running in this thread
# while it is open, and the async tests (pytest-asyncio) cannot start theirs beside it
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
    yield chromium
    chromium.close()


def _script_error(message: ConsoleMessage) -> bool:
    # the browser logs every refused request as an error too: those the tests provoke on purpose
    return message.type == "error" and not message.text.startswith("Failed to load resource")


def open_tab(context: BrowserContext, name: str) -> Tab:
    page = context.new_page()
    tab = Tab(page, name)

    def guard(route: Route) -> None:
        if LOCAL.match(route.request.url):
            route.continue_()
        else:
            tab.outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.on("request", lambda request: tab.requests.append(request))
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.on("console", lambda message: _script_error(message) and tab.errors.append(message.text))
    page.set_default_timeout(30_000)
    return tab


@pytest.fixture
def tab(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = open_tab(context, request.node.name)
    yield opened
    report = getattr(request.node, "call_report", None)
    if report is not None and report.failed:
        opened.shot("failed")  # what the user saw when it went wrong
    context.close()
    assert opened.outside == [], f"the page tried to reach other machines: {opened.outside}"
    assert opened.errors == [], f"script errors on the page: {opened.errors}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.call_report = report  # type: ignore[attr-defined]
    return report

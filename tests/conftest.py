"""Fixtures only (the helpers they use are in tests/helpers.py): a Flask app and its test
client, real monitor and Redis processes on free ports (one from requirements.txt alone), the
dashboard in headless Chromium, a stand-in ingest endpoint and fast clients for
backend_logging_config, a fake clock."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import (
    FakeClock,
    FakeMonitor,
    MonitorProcess,
    Receiver,
    RedisServer,
    Tab,
    bare_python,
    launch_chromium,
    run_bare_monitor,
    run_monitor,
)

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient
    from playwright.sync_api import Browser

    import backend_logging_config as blc


# -- the monitor in this process -------------------------------------------------------------


@pytest.fixture
def app() -> Iterator[Flask]:
    """The monitor's Flask app with self-monitoring off (so counts are exact), stopped afterwards."""
    from live_execution_monitor import create_app

    flask_app = create_app({"self_monitor": False, "interval": 0.05})
    yield flask_app
    flask_app.extensions["live_monitor"].stop()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the ``app`` fixture."""
    return app.test_client()


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """Build monitor apps (self-monitoring off unless asked for); they are stopped afterwards."""
    from live_execution_monitor import create_app

    apps: list[Flask] = []

    def build(settings: dict[str, Any] | None = None, monitor: Any = None) -> Flask:
        app = create_app({"self_monitor": False, **(settings or {})}, monitor)
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["live_monitor"].stop()


# -- the monitor as a real process -----------------------------------------------------------


@pytest.fixture
def monitor_server() -> Iterator[MonitorProcess]:
    """A real monitor process (waitress) with self-monitoring off, so counts are exact."""
    with run_monitor("--no-self-monitor") as server:
        yield server


@pytest.fixture(scope="session")
def bare_interpreter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a venv holding requirements.txt alone, built once for the session."""
    return bare_python(tmp_path_factory.mktemp("bare"))


@pytest.fixture(scope="session")
def bare_monitor(bare_interpreter: Path) -> Iterator[MonitorProcess]:
    """One monitor for the session, started by the README's first command from a venv that
    holds requirements.txt alone (self-monitoring off): what a default install serves. Its
    data is shared, so each test keys what it checks on names of its own."""
    with run_bare_monitor(bare_interpreter, "--no-self-monitor") as server:
        yield server


@pytest.fixture
def start_monitor() -> Callable[..., contextlib.AbstractContextManager[MonitorProcess]]:
    """Start a real monitor process with the given flags (use as a context manager)."""
    return run_monitor


# -- the dashboard in a real browser (test_dashboard*.py) -----------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module, for pages that load the built browser logger; fails (never
    skips) when Chromium or the bundle is missing. A module may override it with its own needs."""
    with launch_chromium("static/live-monitor.js") as launched:
        yield launched


@pytest.fixture(scope="module")
def dashboard_browser() -> Iterator[Browser]:
    """One Chromium for the module; fails (never skips) when it or Chart.js is missing."""
    with launch_chromium("static/vendor/chart.umd.js") as chromium:
        yield chromium


@pytest.fixture
def tab(dashboard_browser: Browser) -> Iterator[Tab]:
    """A fresh 1280x720 page, recording console errors, dialogs and requests."""
    context = dashboard_browser.new_context(viewport={"width": 1280, "height": 720}, locale="en-US")
    context.set_default_timeout(15_000)
    yield Tab(context.new_page())
    context.close()


# -- backend_logging_config (test_backend_logging_config*.py) -------------------------------

_FAST_CLIENT = {"flush_interval": 0.05, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 2.0}


@pytest.fixture
def fake_monitor() -> Iterator[FakeMonitor]:
    """A stand-in for the monitor's ingest endpoint on a free port, stopped afterwards."""
    server = FakeMonitor()
    yield server
    server.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., blc.MonitorClient]]:
    """Makes MonitorClients that flush and back off fast, and closes them after the test."""
    import backend_logging_config as blc

    clients: list[blc.MonitorClient] = []

    def make(url: str, **options: Any) -> blc.MonitorClient:
        client = blc.MonitorClient(url, **{**_FAST_CLIENT, **options})
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=0.5)


@pytest.fixture
def restore_logging_globals() -> Iterator[None]:
    """Restore the root logger and backend_logging_config's default client after each test."""
    import backend_logging_config as blc

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    blc.set_default_client(None)
    if blc._logging_client is not None:
        blc._logging_client.close(timeout=0.5)
        blc._logging_client = None
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


# -- time and Redis --------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand."""
    return FakeClock()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real Redis server for this test, stopped afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free port recording what is posted to it, stopped afterwards."""
    server = Receiver()
    yield server
    server.stop()

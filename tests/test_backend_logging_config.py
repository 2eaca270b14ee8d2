"""Tests for backend_logging_config's logging side: the shared route keys, a stdlib-only import,
configure_logging (JSON lines, rotation, environment overrides) and MonitorHandler, which forwards
log records that carry execution fields. The other entry points have their own files:
test_backend_logging_config_client.py (MonitorClient), _init_app.py (Flask) and _track.py.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import backend_logging_config as blc
from tests.helpers import PARENT, ROOT, TRACE, FakeMonitor, Recorder

pytestmark = pytest.mark.usefixtures("restore_logging_globals")

ROUTE_KEYS = json.loads((ROOT / "tests" / "fixtures" / "route_keys.json").read_text())
# Shared with the browser logger's test (tests/frontend/routes.test.mjs): a page's third-party
# calls are keyed like the backend's outgoing calls.
OUTGOING_KEYS = json.loads((ROOT / "tests" / "fixtures" / "outgoing_keys.json").read_text())["outgoing"]


# -- route keys and import ------------------------------------------------------------------


@pytest.mark.parametrize(("path", "route"), ROUTE_KEYS)
def test_route_keys_match_the_shared_table(path: str, route: str) -> None:
    assert blc.normalize_route(path) == route
    assert blc.endpoint_key("get", path) == f"GET {route}"


@pytest.mark.parametrize(
    ("template", "key"),
    [
        ("/api/users/<name>", "/api/users/:name"),
        ("/api/orders/<int:number>", "/api/orders/:id"),
        ("/api/tokens/<uuid:token>", "/api/tokens/:id"),
        ("/api/users/<user_id>/cart/", "/api/users/:id/cart"),
        ("/api/posts/{slug}", "/api/posts/:slug"),
        ("/api/orders/{id}", "/api/orders/:id"),
        ("/api/orders/{number:int}", "/api/orders/:id"),
        ("/api/posts/:slug", "/api/posts/:slug"),
        ("/api/users/:userId/posts/:postId", "/api/users/:id/posts/:id"),
        ("/api/codes/<string(length=2):code>", "/api/codes/:code"),
        ("/api/v2/user_settings", "/api/v2/user_settings"),
        ("/api/orders/7/lines", "/api/orders/:id/lines"),
    ],
)
def test_route_key_turns_a_servers_template_into_the_shared_key(template: str, key: str) -> None:
    assert blc.route_key(template) == key


@pytest.mark.parametrize(("method", "url", "key"), OUTGOING_KEYS)
def test_outgoing_key_keeps_the_host_an_outgoing_call_went_to(method: str, url: str, key: str) -> None:
    assert blc.outgoing_key(method, url) == key


def test_import_needs_only_the_standard_library() -> None:
    script = """
import sys
class BlockFlask:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "flask":
            raise ImportError("flask is blocked")
sys.meta_path.insert(0, BlockFlask())
before = set(sys.modules)
import backend_logging_config as blc
added = {name.split(".")[0] for name in set(sys.modules) - before}
print(sorted(n for n in added if n not in sys.stdlib_module_names and n != "backend_logging_config"))
with blc.track("job", "run"):
    pass
blc.MonitorClient("http://127.0.0.1:9").close(timeout=0)
print("flask" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "False"]


# -- configure_logging ----------------------------------------------------------------------


def test_json_lines_carry_timestamp_level_logger_message_and_event_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs" / "app.log"
    logger = blc.configure_logging(level="INFO", log_file=log_file)
    assert logger is logging.getLogger()
    fields = dict(service="backend", component="db", action="load", duration_ms=12.5)
    fields.update(status="success", details={"rows": 3}, trace_id=TRACE, span_id=PARENT)
    logging.getLogger("shop.orders").info("loaded %d orders", 3, extra=fields)
    logging.getLogger("shop").debug("not at INFO")
    logging.getLogger("shop").warning("plain")
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["message"] for line in lines] == ["loaded 3 orders", "plain"]
    first, second = lines
    assert first["level"] == "INFO" and first["logger"] == "shop.orders"
    assert {key: first[key] for key in fields} == fields
    stamp = datetime.fromisoformat(first["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=30)
    assert set(second) == {"timestamp", "level", "logger", "message"}
    console = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in console] == ["loaded 3 orders", "plain"]


def test_calling_twice_adds_no_duplicate_handlers(tmp_path: Path) -> None:
    log_file = tmp_path / "app.log"
    blc.configure_logging(log_file=log_file)
    count = len(logging.getLogger().handlers)
    blc.configure_logging(log_file=log_file)
    assert len(logging.getLogger().handlers) == count
    logging.getLogger("x").warning("once")
    assert len(log_file.read_text().splitlines()) == 1


def test_named_logger_and_text_format(tmp_path: Path) -> None:
    log_file = tmp_path / "named.log"
    logger = blc.configure_logging(log_file=log_file, json_format=False, logger_name="myapp")
    assert logger.name == "myapp"
    logger.info("hello text")
    line = log_file.read_text().strip()
    assert line.endswith("INFO myapp: hello text") and not line.startswith("{")


def test_log_file_rotates(tmp_path: Path) -> None:
    log_file = tmp_path / "rot.log"
    blc.configure_logging(log_file=log_file, max_bytes=1000, backup_count=2)
    for number in range(100):
        logging.getLogger("rot").info("line %d %s", number, "x" * 40)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rot.log", "rot.log.1", "rot.log.2"]
    rotated = (tmp_path / "rot.log.1").read_text().splitlines()
    assert rotated and all(json.loads(line)["logger"] == "rot" for line in rotated)


def test_environment_overrides_level_file_and_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "env.log"
    monkeypatch.setenv("LIVE_MONITOR_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("LIVE_MONITOR_LOG_FILE", str(env_file))
    monkeypatch.setenv("LIVE_MONITOR_LOG_FORMAT", "text")
    blc.configure_logging(level="DEBUG", log_file=tmp_path / "ignored.log", json_format=True)
    logging.getLogger("env").info("hidden")
    logging.getLogger("env").warning("shown")
    assert not (tmp_path / "ignored.log").exists()
    assert env_file.read_text().strip().endswith("WARNING env: shown")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LIVE_MONITOR_LOG_FORMAT", "xml", "json or text"),
        ("LIVE_MONITOR_LOG_LEVEL", "LOUD", "LOUD"),
    ],
)
def test_bad_settings_give_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        blc.configure_logging()


def test_configure_logging_forwards_event_records_to_the_monitor(fake_monitor: FakeMonitor) -> None:
    blc.configure_logging(monitor_url=fake_monitor.url)
    logging.getLogger("app").info("plain line")
    logging.getLogger("app").info(
        "charged", extra={"component": "payments", "action": "charge", "duration_ms": 42.0}
    )
    client = blc.get_default_client()
    assert client is not None and client.flush(5)
    [event] = fake_monitor.events()
    assert (event["component"], event["action"], event["duration_ms"]) == ("payments", "charge", 42)
    assert event["service"] == "backend" and event["status"] == "success"
    assert event["details"]["message"] == "charged"


# -- MonitorHandler -------------------------------------------------------------------------


def test_handler_forwards_only_records_with_execution_fields() -> None:
    recorder = Recorder()
    logger = logging.getLogger("test.handler")
    handler = blc.MonitorHandler(recorder)  # type: ignore[arg-type]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("plain message")
        logger.info(
            "loaded",
            extra={"component": "db", "action": "load", "duration_ms": 5.5, "details": {"rows": 2}},
        )
        logger.error("failed", extra={"component": "db", "action": "save"})
    finally:
        logger.removeHandler(handler)
    loaded, failed = recorder.events
    assert (loaded["component"], loaded["action"], loaded["duration_ms"]) == ("db", "load", 5.5)
    assert loaded["status"] == "success" and loaded["details"]["rows"] == 2
    assert failed["status"] == "error" and "duration_ms" not in failed


def test_handler_never_blocks_the_caller_while_monitor_is_down(
    fake_monitor: FakeMonitor, make_client: Any
) -> None:
    fake_monitor.stop()
    client = make_client(fake_monitor.url, max_queue=100, max_retries=10_000)
    logger = logging.getLogger("test.down")
    handler = blc.MonitorHandler(client)
    logger.addHandler(handler)
    try:
        started = time.monotonic()
        for number in range(2000):
            logger.warning("tick %d", number, extra={"component": "job", "action": "tick"})
        assert time.monotonic() - started < 2.0
    finally:
        logger.removeHandler(handler)
    assert client.stats()["queued"] == 100
    assert client.stats()["dropped"] == {"queue_full": 1900}

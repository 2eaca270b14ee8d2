from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from monitor_settings import (
    LOOPBACK_ORIGINS,
    SETTINGS,
    add_arguments,
    markdown_table,
    origin_allowed,
    parse_origins,
    resolve,
)

README = Path(__file__).resolve().parent.parent / "README.md"


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_beat_environment_variables_which_beat_defaults():
    env = {"LIVE_MONITOR_PORT": "6000", "LIVE_MONITOR_INTERVAL": "2.5", "LIVE_MONITOR_SELF_MONITOR": "false"}
    assert resolve(parse([]), env)["port"] == 6000
    assert resolve(parse([]), env)["interval"] == 2.5
    assert resolve(parse([]), env)["self_monitor"] is False
    assert resolve(parse(["--port", "7000", "--self-monitor"]), env)["port"] == 7000
    assert resolve(parse(["--self-monitor"]), env)["self_monitor"] is True
    assert resolve(parse([]), {})["max_events"] == 10_000


def test_every_setting_has_a_flag_and_an_environment_variable():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {a for action in parser._actions for a in action.option_strings}
    for s in SETTINGS:
        assert s.flag in flags
        assert s.env.startswith("LIVE_MONITOR_")
    assert {
        "--host",
        "--port",
        "--interval",
        "--max-events",
        "--autostart",
        "--no-self-monitor",
        "--debug",
    } <= flags


def test_a_bad_environment_value_is_an_error():
    with pytest.raises(ValueError):
        resolve(parse([]), {"LIVE_MONITOR_PORT": "many"})


def test_readme_configuration_table_matches_the_settings():
    assert markdown_table() in README.read_text()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("http://127.0.0.1", True),
        ("http://[::1]:8080", True),
        ("https://localhost.evil.com", False),
        ("http://evil.com", False),
        ("null", False),
    ],
)
def test_default_cors_allowlist_is_loopback_on_any_port(origin, allowed):
    assert origin_allowed(origin, parse_origins(LOOPBACK_ORIGINS)) is allowed


def test_an_explicit_origin_list():
    origins = parse_origins("https://app.example.com, null")
    assert origin_allowed("https://app.example.com", origins)
    assert origin_allowed("null", origins)
    assert not origin_allowed("https://other.example.com", origins)


def test_designs_port_glob_notation_is_anchored():
    origins = parse_origins("http://localhost:*, https://app.example.com")
    assert origin_allowed("http://localhost:3000", origins)
    assert origin_allowed("http://localhost", origins)
    assert not origin_allowed("http://localhost.evil.com", origins)
    assert not origin_allowed("http://localhost:3000.evil.com", origins)

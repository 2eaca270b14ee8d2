from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from live_monitor.core.settings import (
    LOOPBACK_ORIGINS,
    SETTINGS,
    add_arguments,
    markdown_table,
    origin_allowed,
    origins_problem,
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


def test_the_readme_port_glob_notation_is_anchored():
    origins = parse_origins("http://localhost:*, https://app.example.com")
    assert origin_allowed("http://localhost:3000", origins)
    assert origin_allowed("http://localhost", origins)
    assert not origin_allowed("http://localhost.evil.com", origins)
    assert not origin_allowed("http://localhost:3000.evil.com", origins)


def test_every_default_is_within_its_own_range():
    for s in SETTINGS:
        assert s.problem(s.default) is None, s.name


def test_every_number_setting_is_bounded_so_no_value_can_exhaust_memory_or_overflow():
    for s in SETTINGS:
        if s.type in (int, float):
            assert s.low is not None, s.name
            assert s.problem(s.low - 1) is not None, s.name
            if s.name != "min_samples":
                assert s.high is not None and s.problem(s.high + 1) is not None, s.name
                assert s.problem(s.high) is None, s.name


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "0", "0.01"])
def test_an_interval_that_is_not_a_sane_number_of_seconds_is_refused_from_the_environment(text):
    with pytest.raises(ValueError, match="LIVE_MONITOR_INTERVAL must be between 0.05 and 3600"):
        resolve(parse([]), {"LIVE_MONITOR_INTERVAL": text})


def test_help_shows_each_range():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "LIVE_MONITOR_PORT, default 5001, between 0 and 65535]" in text
    assert "LIVE_MONITOR_INTERVAL, default 1.0, between 0.05 and 3600]" in text
    assert "LIVE_MONITOR_MIN_SAMPLES, at least 1]" in text


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[", "'[' is not a valid regular expression"),
        ("https://ok.example, a(b", "'a(b' is not a valid regular expression"),
        ("^http://(x", "'^http://(x' is not a valid regular expression"),
        ("*", None),
        ("http://localhost:*, null", None),
        ("", None),
        (LOOPBACK_ORIGINS, None),
    ],
)
def test_cors_origins_that_are_not_valid_patterns_are_named(value: str, problem: str | None) -> None:
    found = origins_problem(value)
    assert found == problem if problem is None else problem in (found or "")

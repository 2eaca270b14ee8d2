"""One settings table (name, default, environment variable, help) for the monitor.

It feeds the command-line flags, the environment variables, GET /api/live-execution/config
and the README's configuration section, so the four cannot disagree.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from live_monitor.model.scrub import normalise_key
from live_monitor.model.thresholds import Thresholds
from live_monitor.store import store_kind
from live_monitor.store.journal import journal_problem
from live_monitor.vocabulary import SEVERITIES

LOOPBACK_ORIGINS = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$"
MAX_EVENTS_CAP = 1_000_000  # per side; see --max-events


@dataclass(frozen=True)
class Setting:
    """One setting: its flag is ``--name-with-dashes``, its variable ``env``."""

    name: str
    default: Any
    env: str
    help: str
    secret: bool = False
    kind: type | None = None  # the value's type when the default (None: unset) cannot say
    low: float | None = None  # numbers: the smallest value allowed (None: no lower bound)
    high: float | None = None  # numbers: the largest value allowed (None: no upper bound)

    @property
    def type(self) -> type:
        """The value's type: ``kind``, else the default's."""
        return self.kind or type(self.default)

    @property
    def flag(self) -> str:
        """The command-line flag."""
        return "--" + self.name.replace("_", "-")

    @property
    def allowed(self) -> str:
        """The allowed values in words, e.g. ``between 0 and 65535`` ('' when any value goes)."""
        low = None if self.low is None else _number(self.low)
        high = None if self.high is None else _number(self.high)
        if low is None:
            return "" if high is None else f"at most {high}"
        return f"at least {low}" if high is None else f"between {low} and {high}"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is out of range (``must be between 0 and 65535, not -1``), else None.

        NaN fails every comparison, so it is refused wherever there is a bound.
        """
        if value is None or not self.allowed:
            return None
        if (self.low is None or value >= self.low) and (self.high is None or value <= self.high):
            return None
        return f"must be {self.allowed}, not {_number(value)}"

    def parse(self, text: str) -> Any:
        """Convert an environment variable's text to this setting's type, refusing it out of range.

        A repeatable setting (a tuple) takes its values separated by spaces or commas.
        """
        if self.type is tuple:
            return tuple(part for part in re.split(r"[\s,]+", text) if part)
        if self.type is bool:
            if text.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if text.strip().lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"{self.env}: expected true or false, got {text!r}")
        if self.type in (int, float):
            try:
                value = self.type(text)
            except ValueError:
                noun = "a whole number" if self.type is int else "a number"
                raise ValueError(f"{self.env} must be {noun}, not {text!r}") from None
            problem = self.problem(value)
            if problem:
                raise ValueError(f"{self.env} {problem}")
            return value
        return text


def _number(value: float) -> str:
    """``3600`` for 3600.0, else the number as Python prints it (``0.5``, ``nan``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "host", "127.0.0.1", "LIVE_MONITOR_HOST", "Interface to bind; anything but loopback needs --token."
    ),
    Setting(
        "port", 5001, "LIVE_MONITOR_PORT", "TCP port to listen on (0 picks a free one).", low=0, high=65535
    ),
    Setting(
        "interval",
        1.0,
        "LIVE_MONITOR_INTERVAL",
        "Seconds between system samples and difference checks.",
        low=0.05,  # below, the sampler and the difference checks would keep a core busy
        high=3600,
    ),
    Setting(
        "max_events",
        10_000,
        "LIVE_MONITOR_MAX_EVENTS",
        "Events kept per side (backend, frontend); older ones are evicted. A kept event takes "
        "about 0.5 KB of memory (more with large details), so the cap keeps two full sides near 1 GB.",
        low=1,
        high=MAX_EVENTS_CAP,
    ),
    Setting(
        "window",
        900.0,
        "LIVE_MONITOR_WINDOW",
        "Seconds of recent events that the figures and differences cover.",
        low=1,  # the store's time buckets are a second at least
        high=30 * 86_400,
    ),
    Setting(
        "history",
        3600,
        "LIVE_MONITOR_HISTORY",
        "System samples kept for the charts (one per interval).",
        low=1,
        high=86_400,
    ),
    Setting(
        "autostart",
        False,
        "LIVE_MONITOR_AUTOSTART",
        "Start monitoring at launch instead of waiting for POST /start.",
    ),
    Setting(
        "self_monitor",
        True,
        "LIVE_MONITOR_SELF_MONITOR",
        "Record the monitor's own API requests as backend http events (tagged self_monitor).",
    ),
    Setting(
        "debug",
        False,
        "LIVE_MONITOR_DEBUG",
        "Flask's interactive debugger (no reloader); refused unless bound to loopback.",
    ),
    Setting(
        "cors_origins",
        LOOPBACK_ORIGINS,
        "LIVE_MONITOR_CORS_ORIGINS",
        "Comma-separated origins (or one regex) allowed to call the API from a browser; 'null' allows file:// dashboards.",
    ),
    Setting(
        "token",
        "",
        "LIVE_MONITOR_TOKEN",
        "Bearer token required by control and read endpoints (required off loopback).",
        secret=True,
    ),
    Setting(
        "ingest_key",
        "",
        "LIVE_MONITOR_INGEST_KEY",
        "Public key browsers send as X-Ingest-Key when a token is set.",
    ),
    Setting(
        "max_body_bytes",
        1_048_576,
        "LIVE_MONITOR_MAX_BODY_BYTES",
        "Largest request body accepted (after decompression).",
        low=1024,
        high=64 * 1_048_576,  # every worker thread may hold one body in memory
    ),
    Setting(
        "max_batch_events",
        1000,
        "LIVE_MONITOR_MAX_BATCH_EVENTS",
        "Events per batch; those beyond are rejected with a reason.",
        low=1,
        high=MAX_EVENTS_CAP,
    ),
    Setting(
        "recent_limit",
        200,
        "LIVE_MONITOR_RECENT_LIMIT",
        "Events /data returns by default (?limit= overrides, up to twice max-events and at least 1,000).",
        low=0,
        high=MAX_EVENTS_CAP,
    ),
    Setting(
        "min_samples",
        None,
        "LIVE_MONITOR_MIN_SAMPLES",
        "Events needed on each side before a difference is flagged (unset: the thresholds file's, else 10).",
        kind=int,
        low=1,
    ),
    Setting(
        "thresholds",
        "",
        "LIVE_MONITOR_THRESHOLDS",
        "JSON file overriding the difference thresholds (see live_monitor/model/thresholds.py).",
    ),
    Setting(
        "scrub_keys",
        "",
        "LIVE_MONITOR_SCRUB_KEYS",
        "Comma-separated key names to filter besides the built-in ones (password, token, api_key, ...): "
        "a details key, or the key of a key=value pair in text, whose name holds one of them, "
        "compared lowercase without separators, gets its value replaced by [Filtered].",
    ),
    Setting(
        "persist",
        "",
        "LIVE_MONITOR_PERSIST",
        "SQLite file that journals every accepted event (WAL mode); they come back after a restart.",
    ),
    Setting(
        "ingest_rate",
        200,
        "LIVE_MONITOR_INGEST_RATE",
        "Browser ingest requests per second allowed per client (origin and address); over it: 429.",
        low=1,
        high=1_000_000,
    ),
    Setting(
        "store",
        "memory",
        "LIVE_MONITOR_STORE",
        "Where events and figures live: memory (default) or redis://host:port/db, shared by many processes.",
    ),
    Setting(
        "workers",
        1,
        "LIVE_MONITOR_WORKERS",
        "Monitor processes sharing the port (needs --store redis://...).",
        low=1,
        high=64,
    ),
    Setting(
        "threads",
        8,
        "LIVE_MONITOR_THREADS",
        "Worker threads of the WSGI server (waitress).",
        low=1,
        high=1024,
    ),
    Setting(
        "max_connections",
        2048,
        "LIVE_MONITOR_MAX_CONNECTIONS",
        "Open connections per process; at the limit the one waiting longest for its request is "
        "closed to let a new one in. Lowered, with a warning, to what the open-file limit allows.",
        low=16,
        high=65_536,
    ),
    Setting(
        "header_timeout",
        10.0,
        "LIVE_MONITOR_HEADER_TIMEOUT",
        "Seconds a client has to send a request's headers, from its first byte (from connecting, "
        "for the first request); past it: 408 and the connection closes.",
        low=0.5,
        high=3600,
    ),
    Setting(
        "body_timeout",
        60.0,
        "LIVE_MONITOR_BODY_TIMEOUT",
        "Seconds a client has to send a request's body once its headers are in; past it: 408 "
        "and the connection closes.",
        low=0.5,
        high=3600,
    ),
    Setting(
        "otlp_grpc_port",
        4317,
        "LIVE_MONITOR_OTLP_GRPC_PORT",
        "TCP port for OTLP/gRPC on the same host (0 turns it off); when taken, the monitor "
        "serves on without it, warns once and shows it in /status.",
        low=0,
        high=65535,
    ),
    Setting(
        "alert_webhook",
        (),
        "LIVE_MONITOR_ALERT_WEBHOOK",
        "URL to POST a JSON message to when a difference opens or resolves (repeat the flag for "
        "more; the variable takes them separated by spaces or commas). Slack-compatible: it has a text field.",
        secret=True,  # a Slack or Teams webhook URL is itself the credential
    ),
    Setting(
        "alert_min_severity",
        "high",
        "LIVE_MONITOR_ALERT_MIN_SEVERITY",
        "The severity at which a difference opens an alert: low, medium or high.",
    ),
    Setting(
        "public_url",
        "",
        "LIVE_MONITOR_PUBLIC_URL",
        "The dashboard's address as people reach it, for the links in alert messages "
        "(default: the address the monitor serves on).",
    ),
)

BY_NAME = {s.name: s for s in SETTINGS}


def defaults() -> dict[str, Any]:
    """Every setting at its default."""
    return {s.name: s.default for s in SETTINGS}


def add_arguments(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """Add one flag per setting; a flag left out keeps the environment's or default value."""
    for s in SETTINGS:
        if names is not None and s.name not in names:
            continue
        if s.type is bool:
            parser.add_argument(
                s.flag,
                dest=s.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{s.help} [env {s.env}, default {s.default}]",
            )
        elif s.type is tuple:
            parser.add_argument(
                s.flag,
                dest=s.name,
                action="append",
                default=None,
                metavar="URL",
                help=f"{s.help} [env {s.env}]",
            )
        else:
            parser.add_argument(
                s.flag,
                dest=s.name,
                type=s.type,
                default=None,
                metavar=s.name.upper(),
                help=f"{s.help} [env {s.env}"
                + ("" if s.default is None else f", default {s.default!r}")
                + (f", {s.allowed}]" if s.allowed else "]"),
            )


def resolve(
    args: argparse.Namespace | Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Settings from, in order of precedence: flags, environment variables, defaults."""
    environ = os.environ if environ is None else environ
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    settings = defaults()
    for s in SETTINGS:
        if s.env in environ:
            settings[s.name] = s.parse(environ[s.env])
        if given.get(s.name) is not None:
            settings[s.name] = tuple(given[s.name]) if s.type is tuple else given[s.name]
    for key, value in given.items():
        if key not in BY_NAME and value is not None:
            settings[key] = value
    return settings


def range_problem(settings: Mapping[str, Any]) -> str | None:
    """The first setting out of its table range, as ``--flag must be ..., not VALUE``; None when all fit.

    Environment variables are checked as they are read (resolve names the variable), so a
    value out of range here came from a flag or from a caller's settings.
    """
    for s in SETTINGS:
        problem = s.problem(settings.get(s.name, s.default))
        if problem:
            return f"{s.flag} {problem}"
    return None


def public_view(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The settings as GET /config shows them: secrets masked."""
    rows = []
    for s in SETTINGS:
        value = settings.get(s.name, s.default)
        if s.secret and value:
            value = "***"
        rows.append(
            {
                "name": s.name,
                "value": value,
                "default": s.default,
                "env": s.env,
                "flag": s.flag,
                "help": s.help,
            }
        )
    return rows


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| flag | environment variable | default | what it does |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = "" if s.default in ("", None, ()) else f"`{s.default}`".replace("|", "\\|")
        allowed = f" ({s.allowed[0].upper()}{s.allowed[1:]}.)" if s.allowed else ""
        lines.append(f"| `{s.flag}` | `{s.env}` | {default} | {s.help}{allowed} |")
    return "\n".join(lines)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_origins(value: str) -> list[str]:
    """The CORS allowlist: comma-separated origins or regexes (a lone regex may hold commas)."""
    value = value.strip()
    if value.startswith("^"):
        return [value]
    return [_glob(o.strip()) for o in value.split(",") if o.strip()]


# Flask-CORS compiles an origin holding any of these characters as a regular expression.
_REGEX_HINTS = frozenset("[]()^$*?\\")


def origins_problem(value: str) -> str | None:
    """Why a ``--cors-origins`` value would not load (an entry that is not a valid regex), else None."""
    for pattern in parse_origins(value):
        if pattern == "*" or _REGEX_HINTS.isdisjoint(pattern):
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"{pattern!r} is not a valid regular expression ({exc})"
    return None


def scrub_keys_problem(value: str) -> str | None:
    """Why a ``--scrub-keys`` value is unusable (a name without a letter or digit, which would
    match nothing), else None."""
    for name in value.split(","):
        if name.strip() and not normalise_key(name):
            return f"{name.strip()!r} has no letter or digit to match a key name by"
    return None


def _glob(origin: str) -> str:
    """``http://localhost:*`` (the README's notation) as an anchored pattern; others as given."""
    if origin.endswith(":*") and "://" in origin:
        return "^" + re.escape(origin[:-2]) + r"(:\d+)?$"
    return origin


def origin_allowed(origin: str, allowed: Sequence[str]) -> bool:
    """True when ``origin`` equals an allowed origin or fully matches an allowed regex."""
    for pattern in allowed:
        if pattern == "*" or pattern == origin:
            return True
        if pattern.startswith("^") and re.fullmatch(pattern, origin):
            return True
    return False


def check_settings(settings: Mapping[str, Any]) -> str | None:
    """Refuse values out of range and unsafe combinations; returns the reason or None."""
    out_of_range = range_problem(settings)
    if out_of_range:
        return out_of_range
    bad_origin = origins_problem(settings["cors_origins"])
    if bad_origin:
        return f"--cors-origins: {bad_origin}"
    bad_name = scrub_keys_problem(settings["scrub_keys"])
    if bad_name:
        return f"--scrub-keys: {bad_name}"
    if settings["otlp_grpc_port"] and settings["otlp_grpc_port"] == settings["port"]:
        return "--otlp-grpc-port must differ from --port (gRPC and HTTP cannot share a port)"
    if settings["debug"] and not is_loopback(settings["host"]):
        return "--debug runs Flask's interactive debugger and is refused unless bound to loopback"
    kind = store_kind(settings["store"])
    if kind is None:
        return f"--store must be 'memory' or a redis:// URL, not {settings['store']!r}"
    if settings["workers"] > 1 and kind != "redis":
        return "--workers needs a shared store: add --store redis://host:port/db"
    if settings["persist"] and kind != "memory":
        return "--persist journals the in-memory store; with Redis the events live in Redis"
    if settings["persist"]:
        unusable = journal_problem(settings["persist"])
        if unusable:
            return f"--persist {settings['persist']}: {unusable}"
    if settings["thresholds"]:
        try:
            Thresholds.from_file(settings["thresholds"])
        except (OSError, ValueError, TypeError) as exc:
            return f"--thresholds {settings['thresholds']}: {getattr(exc, 'strerror', None) or exc}"
    alerting = alert_problem(settings)
    if alerting:
        return alerting
    if not is_loopback(settings["host"]) and not settings["token"]:
        return (
            f"binding {settings['host']} exposes the monitor beyond this machine: "
            "set --token (or LIVE_MONITOR_TOKEN) so control and read endpoints need it"
        )
    return None


def alert_problem(settings: Mapping[str, Any]) -> str | None:
    """Why the alert settings cannot work (a webhook that is not an http(s) URL, an unknown
    severity), else None."""
    if settings["alert_min_severity"] not in SEVERITIES:
        return f"--alert-min-severity must be low, medium or high, not {settings['alert_min_severity']!r}"
    if settings["public_url"] and not _http_url(settings["public_url"]):
        return f"--public-url must be an http:// or https:// URL, not {settings['public_url']!r}"
    for url in settings["alert_webhook"]:
        if not _http_url(url):
            return f"--alert-webhook must be an http:// or https:// URL with a host, not {url!r}"
    return None


def _http_url(url: str) -> bool:
    """True for an http or https URL with a host and no spaces."""
    return re.fullmatch(r"https?://[^/\s?#]+(?:[/?#]\S*)?", url, flags=re.IGNORECASE) is not None

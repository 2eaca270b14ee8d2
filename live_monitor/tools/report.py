"""Report building: the figures and differences of two event files or of a running monitor, and the
baseline a run is compared with.

Files are streamed once into the same aggregates and comparator the live monitor uses, so
both give the same figures, and memory stays flat for millions of events. Rendering lives in
live_monitor/tools/render.py; the command line in execution_difference_report.py.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec

from live_monitor.model import policy
from live_monitor.model.baseline import BaselineComparison, Run, compare_runs, distributions, run_of_report
from live_monitor.model.comparator import (
    compare,
    comparison,
    endpoint_rows,
    summaries,
)
from live_monitor.model.events import EventFilter
from live_monitor.model.routes import RouteTemplates, learn_routes
from live_monitor.model.stats import PairStats
from live_monitor.model.thresholds import Thresholds
from live_monitor.tools.files import (
    BadRecord,
    Event,
    InputError,
    decode_json,
    iter_records,
    read_document,
    to_event,
)
from live_monitor.vocabulary import API, ENDPOINT_COMPONENTS, SERVICES, Service

__all__ = [
    "InputError",
    "attach_baseline",
    "build_stats",
    "compare_with_baseline",
    "load_baseline",
    "load_thresholds",
    "report_from_files",
    "report_from_monitor",
]

DEFAULT_URL = "http://localhost:5001"
PROGRESS_EVERY = 100_000


# --- reading event files ----------------------------------------------------------------


def _read(path: Path, side: Service | None, only: EventFilter | None = None) -> Iterator[Event]:
    """Yield one side's events of a file (both sides' when ``side`` is None, each record naming
    its own): not the other side's (a shared /data export), not log lines without event fields,
    not the monitor's own traffic, and with ``only`` just those of its release and environment."""
    skipped = {"other": 0, "own": 0, "filtered": 0}
    kept = 0
    for where, record in iter_records(path):
        if isinstance(record, BadRecord):
            raise InputError(f"{where}: {record.reason}")
        try:
            event = to_event(record, where, side)
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None
        if event is None:
            continue
        if only and not only.matches(event):
            skipped["filtered"] += 1
            continue
        other = side is not None and event.service != side
        if other or not policy.counted([event]):
            skipped["other" if other else "own"] += 1  # a shared /data export
            continue
        kept += 1
        yield event
    if not kept:
        if skipped["own"]:  # a /data save taken while only the dashboard talked to the monitor
            why = [f"{skipped['own']:,} of the monitor's own requests"]
            why += [f"{skipped['other']:,} of the other side"] if skipped["other"] else []
        elif skipped["other"]:
            why = [f"{skipped['other']:,} events of the other side skipped: are the files swapped?"]
        else:
            why = []
        if skipped["filtered"] and only:
            asked = ", ".join(f"{k} {v!r}" for k, v in only.as_dict().items())
            why.append(f"{skipped['filtered']:,} events not of {asked}")
        reason = f" ({', '.join(why)})" if why else ""
        print(f"warning: {path} holds no {side or 'backend or frontend'} events{reason}", file=sys.stderr)


def build_stats(
    sources: Sequence[tuple[Path, Service | None]],
    progress: Callable[[dict[str, int]], None] | None = None,
    where: EventFilter | None = None,
) -> PairStats:
    """Stream the files once into the monitor's aggregates, joining requests by trace id.

    Files are merged by timestamp so a request's two halves meet soon after each other; they
    pair by the live monitor's rule (``policy``: parent span, then endpoint key, then the
    trace's only two halves), time read from the events, and the halves waiting are bounded,
    so memory stays flat whatever the file sizes. ``where``: only the events of one release
    and/or environment.
    """
    pair = PairStats()
    join = policy.TraceJoin()
    routes = RouteTemplates()  # the server's route templates, as the live monitor learns them
    browser_calls = ENDPOINT_COMPONENTS["frontend"]
    seen = {"backend": 0, "frontend": 0}
    merged = heapq.merge(*(_read(path, side, where) for path, side in sources), key=attrgetter("ts"))
    for e in merged:
        if e.details and "route" in e.details:
            learn_routes(routes, [e])
        elif e.service == "frontend" and e.component == browser_calls and len(routes):
            e.action = routes.key_for(e.action) or e.action  # as the live monitor keys it on ingest
        for endpoint, gap in join.offer(policy.pairable([e]), e.ts):  # first: it may re-key e
            pair.add_gap(endpoint, gap)
        pair.side(e.service).add(e.component, e.action, e.duration_ms, e.is_error, e.ts, e.sample_rate)
        seen[e.service] += 1
        if progress is not None and (seen["backend"] + seen["frontend"]) % PROGRESS_EVERY == 0:
            progress(seen)
    pair.frontend.rekey(routes.key_for)  # browser calls meet the server's routes, in any order
    for side in (pair.backend, pair.frontend):
        last = side.total.last_ts or 0.0  # files have no "now": a side's figures end at its last event
        side.minutes = policy.window_minutes(last, side.total.first_ts, math.inf, 60.0)
    return pair


def report_from_files(
    sources: Sequence[tuple[Path, Service | None]],
    thresholds: Thresholds,
    progress: Callable[[dict[str, int]], None] | None = None,
    where: EventFilter | None = None,
) -> dict[str, Any]:
    """The report (``{"summary", "differences", "distributions"}``) of event files (a side of None:
    a file holding both sides' events, each naming its service); ``distributions`` is what a later
    ``--baseline`` tests its changes against (see live_monitor/model/baseline.py). ``where``: the
    events of one release and/or environment only (the summary's ``source.filter`` says which)."""
    _check_files([path for path, _ in sources])
    pair = build_stats(sources, progress, where)
    backend, frontend = summaries(pair)
    backend["window_minutes"] = round(pair.backend.minutes, 2)
    frontend["window_minutes"] = round(pair.frontend.minutes, 2)
    source: dict[str, Any] = {
        "kind": "files",
        "files": [{"path": str(p), "side": s or "both"} for p, s in sources],
    }
    if where:
        source["filter"] = where.as_dict()
    summary = {
        "source": source,
        **{"generated_at": _now_iso(), "backend": backend, "frontend": frontend},
        **{
            "comparison": comparison(pair),
            "endpoints": endpoint_rows(pair),
            "thresholds": thresholds.as_dict(),
        },
    }
    return {
        "summary": summary,
        "differences": msgspec.to_builtins(compare(pair, thresholds)),
        "distributions": msgspec.to_builtins(distributions(pair)),
    }


# --- a baseline: the run this one is compared with --------------------------------------


def load_baseline(paths: list[Path], thresholds: Thresholds, where: EventFilter | None = None) -> Run:
    """The run to compare with (``--baseline``): a report saved with ``--format json``, a saved
    /data export, or event files (one file of both sides' events, or a backend and a frontend
    file). A /data export is read as its events when it holds all of its window's events, else
    as its figures. ``where`` (``--baseline-release``): the events of that release only, so the
    files need to hold events; a saved report's figures cannot be split."""
    _check_files(paths)
    if len(paths) == 2:
        report = report_from_files([(paths[0], "backend"), (paths[1], "frontend")], thresholds, where=where)
        return _baseline_run(report, thresholds, "event files", paths)
    path = paths[0]
    document = read_document(path)
    if document is not None and "summary" in document and "differences" in document:
        if where:
            raise InputError(
                f"{path}: a saved report holds figures, not events: it cannot be filtered by release"
            )
        return _baseline_run(document, thresholds, "saved report", paths)
    if document is not None and isinstance(document.get("recent_events"), list):
        if where:  # the export's events of that release: its figures hold every release together
            report = report_from_files([(path, None)], thresholds, where=where)
            return _baseline_run(report, thresholds, "/data export", [path])
        return _baseline_of_export(path, document, thresholds)
    report = report_from_files([(path, None)], thresholds, where=where)
    return _baseline_run(report, thresholds, "event file", paths)


def _baseline_of_export(path: Path, document: dict[str, Any], thresholds: Thresholds) -> Run:
    """A /data export: its events when it holds every event of its window (they carry the
    distributions), else its endpoint figures, saying why."""
    window = {s: _window_events(document.get(s)) for s in SERVICES}
    if len(document["recent_events"]) >= sum(window.values()):
        report = report_from_files([(path, None)], thresholds)
        kept = {s: report["summary"][s]["total_events"] for s in SERVICES}
        if all(kept[s] >= window[s] for s in SERVICES):
            return _baseline_run(report, thresholds, "/data export", [path])
    held = len(document["recent_events"])
    note = (
        f"the export holds {held:,} events of the {sum(window.values()):,} in its window "
        "(save it with a larger ?limit= for the distributions): its figures are compared"
    )
    return _baseline_run(document, thresholds, "/data export", [path], note)


def _window_events(side: Any) -> int:
    if not isinstance(side, dict):
        return 0
    found = side.get("window_events", side.get("total_events"))
    return found if isinstance(found, int) and not isinstance(found, bool) and found > 0 else 0


def _baseline_run(
    report: dict[str, Any], thresholds: Thresholds, kind: str, paths: list[Path], note: str | None = None
) -> Run:
    """The run of a baseline report, its source said: the files, what they are, when it was made."""
    try:
        run = run_of_report(report, thresholds)
    except ValueError as exc:
        raise InputError(f"{paths[0]}: not a usable baseline: {exc}") from None
    summary = report.get("summary", report)
    source: dict[str, Any] = {
        "kind": kind,
        "files": [str(p) for p in paths],
        "generated_at": summary.get("generated_at") if isinstance(summary, dict) else None,
    }
    if note:
        source["note"] = note
    return dataclasses.replace(run, source=source)


def attach_baseline(
    report: dict[str, Any], paths: list[Path], thresholds: Thresholds, where: EventFilter | None = None
) -> BaselineComparison:
    """Compare the run ``report`` describes with the baseline in ``paths`` (its events of ``where``
    only, when given), and add the comparison to the report as its ``baseline`` section (JSON
    builtins, as the renderers read it)."""
    baseline = load_baseline(paths, thresholds, where)
    if where:
        baseline = dataclasses.replace(baseline, source={**baseline.source, "filter": where.as_dict()})
    comparison = compare_with_baseline(report, baseline, thresholds)
    report["baseline"] = msgspec.to_builtins(comparison)
    return comparison


def compare_with_baseline(
    report: dict[str, Any], baseline: Run, thresholds: Thresholds
) -> BaselineComparison:
    """What changed from ``baseline`` to the run ``report`` describes, per endpoint and side."""
    try:
        current = run_of_report(report, thresholds)
    except ValueError as exc:
        raise InputError(f"this run's report: {exc}") from None
    return compare_runs(baseline, current, thresholds)


def _check_files(paths: list[Path]) -> None:
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")


# --- reading a live monitor -------------------------------------------------------------


def _get_json(url: str, token: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        hint = " (pass --token or set LIVE_MONITOR_TOKEN)" if exc.code == 401 else ""
        raise InputError(f"the monitor at {url} answered HTTP {exc.code} {exc.reason}{hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(
            f"cannot reach the monitor at {url}: {reason}. Is the monitor running? "
            "Start it with python run_live_monitor.py (or pass --url, or use "
            "--backend-data/--frontend-data files)"
        ) from None
    try:
        return decode_json(body)
    except ValueError:
        raise InputError(f"{url} did not answer JSON: is --url a Live Execution Monitor?") from None


def report_from_monitor(
    url: str, token: str = "", timeout: float = 10.0, where: EventFilter | None = None
) -> dict[str, Any]:
    """The report of a running monitor, from its /data (and /differences, from a monitor whose
    /data does not carry them yet); ``where``: of one release and/or environment (the monitor
    computes those figures from its stored events)."""
    base = url.rstrip("/")
    if base.endswith(API):
        base = base[: -len(API)]
    query = f"&{urllib.parse.urlencode(where.as_dict())}" if where else ""
    data = _get_json(f"{base}{API}/data?limit=0&history=0{query}", token, timeout)
    found = data
    if not isinstance(data, dict) or "differences" not in data:
        found = _get_json(f"{base}{API}/differences?{query[1:]}", token, timeout)
    if not isinstance(data, dict) or not isinstance(found, dict) or "differences" not in found:
        raise InputError(f"{base}{API} answered an unexpected shape: is it a Live Execution Monitor?")
    source = {"kind": "monitor", "url": base, **{k: data.get(k) for k in ("monitoring", "window_seconds")}}
    if where:
        source["filter"] = data.get("filter") or where.as_dict()
    summary = {
        "source": source,
        "generated_at": data.get("generated_at") or _now_iso(),
        **{k: data.get(k) or {} for k in ("backend", "frontend", "comparison")},
        "endpoints": data.get("endpoints") or [],
        "thresholds": found.get("thresholds") or {},
    }
    return {"summary": summary, "differences": list(found["differences"])}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def load_thresholds(path: str | None, min_samples: int | None) -> Thresholds:
    """The default thresholds, or a JSON file's, checked so a typo fails here and not mid-report."""
    thresholds = Thresholds()
    if path:
        try:
            thresholds = Thresholds.from_file(path)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(
                f"{path}: not a usable thresholds file: {getattr(exc, 'strerror', None) or exc}"
            ) from None
    return thresholds if min_samples is None else dataclasses.replace(thresholds, min_samples=min_samples)

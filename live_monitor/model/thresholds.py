"""The comparator's thresholds: where a gap between the two sides becomes a difference.

Read from a JSON file (``--thresholds``) or the defaults; each level is a (low, medium, high)
tuple of increasing numbers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["HELP", "Levels", "Thresholds", "markdown_table"]

Levels = tuple[float, float, float]


# What each threshold decides: the README's thresholds table is generated from this (a test checks).
HELP = {
    "min_samples": "Events (or calls) each side needs before anything is flagged.",
    "activity_pct": "Service: events per minute apart, % of the quieter side (API calls when both sides have some).",
    "performance_pct": "Service: average durations apart, % of the faster side; needs `performance_ms` too.",
    "performance_ms": "Service: average durations apart, in ms, after the usual network gap.",
    "error_rate_points": "Service: error rates apart, in percentage points.",
    "endpoint_gap_ms": "Endpoint: browser minus server median (or joined-request median gap), in ms.",
    "endpoint_gap_pct": "Endpoint: the same gap as a % of the server's median (of its p95 for tails).",
    "endpoint_error_points": "Endpoint: error rates apart, in percentage points.",
    "endpoint_tail_gap_ms": "Endpoint, median fine: browser minus server p95 gap in ms (half the p99 gap on 100+ calls).",
    "endpoint_activity_pct": "Endpoint: calls counted apart, % of the smaller count.",
    "pattern_share_pct": "Service: share of the browser's API calls to endpoints the backend never saw, %.",
    "tail_min_samples": "Endpoint: calls (or joined requests) before its p95 is judged, more than its largest few.",
    "p99_min_samples": "Endpoint: calls (or joined requests) before its p99 is judged too.",
    "confidence_level": "How sure a test must be that an error-rate, average-duration or sampled-count gap is not chance.",
}


def markdown_table() -> str:
    """The README's thresholds table: every field, its default and what it decides."""
    rows = ["| Threshold | Default (low, medium, high) | What it decides |", "|---|---|---|"]
    for f in fields(Thresholds):
        value = getattr(Thresholds(), f.name)
        shown = ", ".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"
        rows.append(f"| `{f.name}` | {shown} | {HELP[f.name]} |")
    return "\n".join(rows)


@dataclass(frozen=True)
class Thresholds:
    """Where a gap becomes a low, medium or high difference; each tuple is (low, medium, high).

    A severity needs both the relative and the absolute gap to reach its level, so a
    30 ms network overhead on a 20 ms endpoint is not an alarm while 900 ms is. Nothing
    is flagged on fewer than ``min_samples`` events on each side. An error-rate gap is
    flagged only when a two-proportion test says, at ``confidence_level``, it is not chance.
    A tail gap (``endpoint_tail_gap_ms``) is the browser-minus-server p95 of an endpoint whose
    median is fine, judged from ``tail_min_samples`` calls; its p99 (from ``p99_min_samples``)
    must reach twice these levels.
    """

    min_samples: int = 10
    activity_pct: Levels = (25.0, 50.0, 100.0)
    performance_pct: Levels = (20.0, 35.0, 50.0)
    performance_ms: Levels = (10.0, 25.0, 50.0)
    error_rate_points: Levels = (2.0, 5.0, 15.0)
    endpoint_gap_ms: Levels = (100.0, 250.0, 500.0)
    endpoint_gap_pct: Levels = (50.0, 100.0, 200.0)
    endpoint_error_points: Levels = (2.0, 5.0, 15.0)
    endpoint_tail_gap_ms: Levels = (500.0, 1000.0, 2000.0)
    endpoint_activity_pct: Levels = (25.0, 50.0, 100.0)
    pattern_share_pct: Levels = (5.0, 15.0, 30.0)
    tail_min_samples: int = 20
    p99_min_samples: int = 100
    confidence_level: float = 0.95

    @classmethod
    def from_file(cls, path: str | Path) -> Thresholds:
        """Load thresholds from a JSON object whose keys are this class's fields."""
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError("thresholds must be a JSON object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown threshold(s): {', '.join(sorted(unknown))}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("min_samples", "tail_min_samples", "p99_min_samples"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{f.name} must be a whole number >= 1")
            elif f.name == "confidence_level":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.5 <= value < 1:
                    raise ValueError("confidence_level must be a number from 0.5 to below 1 (e.g. 0.95)")
            elif not (
                isinstance(value, tuple)
                and len(value) == 3
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                and list(value) == sorted(value)
            ):
                raise ValueError(f"{f.name} must be 3 increasing numbers (low, medium, high)")

    def as_dict(self) -> dict[str, Any]:
        """The thresholds as JSON-ready builtins."""
        return asdict(self)

"""The Live Execution Monitor: watch a web app's backend and frontend at once and see where they differ.

The front door: ``live_monitor.ExecutionEvent``, ``live_monitor.LiveExecutionMonitor`` and
``live_monitor.create_app`` are imported on first use, so ``import live_monitor`` (which the
first-run install needs, before any requirement is there) imports nothing beyond the
standard library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from live_monitor.core.monitor import LiveExecutionMonitor
    from live_monitor.model.events import ExecutionEvent
    from live_monitor.web.app import create_app

__all__ = ["ExecutionEvent", "LiveExecutionMonitor", "create_app"]

_HOMES = {
    "ExecutionEvent": "live_monitor.model.events",
    "LiveExecutionMonitor": "live_monitor.core.monitor",
    "create_app": "live_monitor.web.app",
}


def __getattr__(name: str) -> Any:
    """Import a re-exported name from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

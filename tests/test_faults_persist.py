"""The ``--persist`` journal under faults, with real monitor processes: ``kill -9`` under load
(acknowledged events compared by id with what a monitor restarted on the same journal serves),
also while a restarted monitor still reads its journal back, and a journal that cannot grow (a file-size limit, as a full disk: writes fail with EFBIG).

Each test prints its figures; each fails on any acknowledged event missing afterwards, any
answer but 200 or 503 (with Retry-After), or an answer that does not come (every request has a
timeout).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from live_monitor.model.events import ExecutionEvent
from live_monitor.store.journal import EventJournal
from live_monitor.vocabulary import API, HEALTH_PATH
from tests.helpers import FAULT_ID, ROOT, IngestLoad, RouteWatch, run_monitor, served_ids, wait_for

pytestmark = pytest.mark.timeout(180)

TRIALS = 12
ACKS_PER_TRIAL = 100  # events acknowledged before each kill: the clients are still posting then
FLAGS = ("--no-self-monitor", "--max-events", "100000")

# Run a command under a file-size limit (argv: bytes, command...). A process that writes past it
# gets SIGXFSZ, which kills it unless ignored; ignored (Python ignores it too), the write fails
# with EFBIG, as a write to a full disk fails with ENOSPC. Only the soft limit is set, so that
# the test may lift it again (as space freed on the disk) without privileges.
FILE_SIZE_LIMIT = (
    "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "limit = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY)); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)
JOURNAL_LIMIT = 256 * 1024  # bytes: a few hundred batches fill it
FULL = 50  # 503s the clients get once the journal is full
READS = 30  # reads (/health, /data, /status) answered meanwhile


def test_kill_9_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """Each trial's monitor is killed while clients post; the next one, started on the same
    journal, must serve every event any monitor before it acknowledged."""
    journal = str(tmp_path / "events.db")
    acked: set[str] = set()
    tried = unanswered = failed = 0
    for trial in range(TRIALS + 1):
        with run_monitor("--persist", journal, *FLAGS) as server:
            served = served_ids(server.url)
            lost = acked - served
            assert lost == set(), f"trial {trial}: lost {len(lost)}, e.g. {sorted(lost)[:5]}"
            if trial == TRIALS:
                break
            with IngestLoad(server.url, clients=3, batch=5, tag=f"t{trial}c") as load:
                load.wait_for_acks(ACKS_PER_TRIAL)
                server.proc.kill()  # kill -9 while requests are in flight
                server.proc.wait(10)
            assert load.failures == [], load.failures[:10]
            acked |= load.acked
            tried, unanswered, failed = (
                tried + load.tried,
                unanswered + load.unanswered,
                failed + len(load.failures),
            )
    print(
        f"\nkill -9 with --persist, {TRIALS} trials: tried {tried}, acknowledged {len(acked)}, "
        f"requests cut or refused by the kills {unanswered}, failed {failed}, lost 0; journaled but never "
        f"acknowledged (answers the kill cut) {len(served - acked)}"
    )
    assert unanswered > 0  # the kills did land under load


# The monitor, its journal's restore held for good after the first chunk: killed while it reads back.
HELD_RESTORE = (
    "import sys, threading; from live_monitor.core.restore import JournalRestore; "
    "JournalRestore.before_chunk = lambda self: self.loaded and threading.Event().wait(); "
    "import live_execution_monitor; sys.exit(live_execution_monitor.main(sys.argv[1:]))"
)
JOURNALED = 10_000  # events journaled before the first start: more than one chunk to read back


def _restore_status(base: str) -> dict[str, Any]:
    answer: dict[str, Any] = requests.get(f"{base}{API}/status", timeout=10).json()["restore"]
    return answer


def test_kill_9_while_the_journal_is_read_back_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """Twice a monitor is killed while it reads a journal back and clients post (it serves
    meanwhile); the monitor started after, on the same journal, serves every event."""
    journal = EventJournal(tmp_path / "events.db", keep=100_000)
    written = [f"j{n}" for n in range(JOURNALED)]
    for start in range(0, JOURNALED, 1000):
        journal.append(
            [
                ExecutionEvent(service="backend", component="fault", action="post", details={FAULT_ID: i})
                for i in written[start : start + 1000]
            ]
        )
    journal.close()
    acked = set(written)
    for trial in range(2):
        command = [sys.executable, "-c", HELD_RESTORE, "--port", "0", "--persist", str(journal.path), *FLAGS]
        with run_monitor(command=command, restored=False) as server:
            assert wait_for(lambda: _restore_status(server.url)["loaded"] > 0, timeout=30)
            held = _restore_status(server.url)
            assert held["state"] == "restoring" and 0 < held["loaded"] < held["total"]
            assert requests.get(f"{server.url}/ready", timeout=10).status_code == 503
            with IngestLoad(server.url, clients=3, batch=5, tag=f"r{trial}c") as load:
                load.wait_for_acks(ACKS_PER_TRIAL)
                server.proc.kill()  # kill -9 mid-restore, while requests are in flight
                server.proc.wait(10)
            assert load.failures == [], load.failures[:10]
            acked |= load.acked
    with run_monitor("--persist", str(journal.path), *FLAGS) as server:  # waits for /ready
        served = served_ids(server.url)
    lost = acked - served
    print(
        f"\nkill -9 twice during the restore: acknowledged {len(acked) - JOURNALED} during it, lost {len(lost)}"
    )
    assert lost == set(), sorted(lost)[:10]


def _limited(limit: int, *args: str) -> list[str]:
    """The monitor's command line, run under a file-size limit of ``limit`` bytes."""
    monitor = [sys.executable, "-u", str(ROOT / "live_execution_monitor.py"), "--port", "0", *args]
    return [sys.executable, "-c", FILE_SIZE_LIMIT, str(limit), *monitor]


def test_a_full_journal_answers_503_acknowledges_only_what_it_wrote_and_recovers(
    tmp_path: Path,
) -> None:
    journal = str(tmp_path / "events.db")
    allowed = {HEALTH_PATH: {200}, f"{API}/data?limit=20": {200}, f"{API}/status": {200}}
    with run_monitor(command=_limited(JOURNAL_LIMIT, "--persist", journal, *FLAGS)) as server:
        with RouteWatch(server.url, allowed) as watch, IngestLoad(server.url, clients=2, batch=20) as load:
            full = lambda: load.failures or load.statuses.get(503, 0) >= FULL  # noqa: E731
            assert wait_for(full, timeout=60), load.figures()
            assert wait_for(lambda: watch.calls >= READS, timeout=30), watch.seen  # reads go on
            full_at = len(load.acked)
            unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, unlimited)  # space again
            load.wait_for_acks(200)  # ingest recovers by itself
            # the log line comes before the answer, but its reader thread may not have read it yet
            wait_for(lambda: "the journal takes writes again" in "".join(server.output), timeout=10)
        output = "".join(server.output)
    with run_monitor("--persist", journal, *FLAGS) as restarted:  # no limit: read it back
        served = served_ids(restarted.url)
    lost = load.acked - served
    print(
        f"\njournal on a full disk ({JOURNAL_LIMIT // 1024} KiB limit, then lifted): {load.figures()}, "
        f"acknowledged before it filled {full_at}, lost {len(lost)}, journaled {len(served)}; "
        f"reads meanwhile: {watch.seen}"
    )
    assert full_at > 0, "nothing was acknowledged before the journal filled"
    assert lost == set(), sorted(lost)[:10]
    assert load.failures == [], load.failures[:10]
    assert watch.failures == [], watch.failures[:10]
    assert "Traceback" not in output
    assert "cannot write to the journal" in output  # the log says why ingest answers 503
    assert "the journal takes writes again" in output

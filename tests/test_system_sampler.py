from __future__ import annotations

import threading

import pytest
from conftest import FakeClock, FakeReader, reading

from system_sampler import PsutilReader, SystemSampler


def test_rates_come_from_counter_deltas(clock: FakeClock):
    reader = FakeReader(
        [
            reading(disk_read_bytes=1_000, net_sent_bytes=500, cpu_percent=12.5),
            reading(disk_read_bytes=5_000, net_sent_bytes=2_500, net_recv_bytes=4_000, cpu_percent=40.0),
        ]
    )
    sampler = SystemSampler(reader, interval=2.0, clock=clock)
    first = sampler.tick()
    assert first["disk_read_bytes_per_s"] == 0.0  # no previous reading: no rate yet
    assert first["cpu_percent"] == 12.5
    clock.advance(2.0)
    second = sampler.tick()
    assert second["disk_read_bytes_per_s"] == 2_000.0
    assert second["net_sent_bytes_per_s"] == 1_000.0
    assert second["net_recv_bytes_per_s"] == 2_000.0
    assert second["cpu_percent"] == 40.0
    assert sampler.latest() == second
    assert sampler.last_sample_at == clock.now


def test_a_counter_that_goes_backwards_gives_zero_not_a_negative_rate(clock):
    sampler = SystemSampler(
        FakeReader([reading(net_recv_bytes=9_000), reading(net_recv_bytes=10)]), clock=clock
    )
    sampler.tick()
    clock.advance(1)
    assert sampler.tick()["net_recv_bytes_per_s"] == 0.0


def test_history_is_bounded(clock):
    sampler = SystemSampler(FakeReader([reading()]), history=3, clock=clock)
    for _ in range(5):
        clock.advance(1)
        sampler.tick()
    assert len(sampler.recent()) == 3
    assert len(sampler.recent(2)) == 2


def test_each_tick_notifies(clock):
    seen = []
    sampler = SystemSampler(FakeReader([reading(cpu_percent=7.0)]), on_tick=seen.append, clock=clock)
    sampler.tick()
    assert seen[0]["cpu_percent"] == 7.0


def test_start_and_stop_are_idempotent_and_never_run_two_threads():
    ticked = threading.Event()
    sampler = SystemSampler(FakeReader([reading()]), interval=0.01, on_tick=lambda s: ticked.set())
    assert sampler.start() is True
    assert sampler.start() is False
    assert ticked.wait(5)
    assert [t.name for t in threading.enumerate()].count("live-monitor-sampler") == 1
    assert sampler.stop() is True
    assert sampler.running is False
    assert sampler.stop() is False
    assert "live-monitor-sampler" not in [t.name for t in threading.enumerate()]


def test_a_failing_reader_does_not_kill_the_thread():
    calls = []
    ok = threading.Event()

    def flaky() -> dict[str, float]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk counters unavailable")
        ok.set()
        return reading()

    sampler = SystemSampler(flaky, interval=0.01)
    sampler.start()
    try:
        assert ok.wait(5)
    finally:
        sampler.stop()
    assert sampler.errors == 1


def test_interval_must_be_positive():
    with pytest.raises(ValueError):
        SystemSampler(FakeReader([reading()]), interval=0)


def test_the_real_psutil_reader_gives_plausible_numbers():
    raw = PsutilReader()()
    assert 0.0 <= raw["cpu_percent"] <= 100.0
    assert 0.0 < raw["memory_percent"] < 100.0
    assert raw["process_rss_bytes"] > 1_000_000
    assert raw["net_sent_bytes"] >= 0 and raw["disk_read_bytes"] >= 0


def test_the_schedule_does_not_drift_by_the_time_a_sample_takes():
    from system_sampler import next_tick

    assert next_tick(began=100.0, ticks=1, interval=1.0, now=100.3) == (1, pytest.approx(0.7))
    assert next_tick(began=100.0, ticks=2, interval=1.0, now=101.05) == (2, pytest.approx(0.95))
    # a machine suspended for 5.5 s skips the missed ticks instead of firing them all at once
    assert next_tick(began=100.0, ticks=3, interval=1.0, now=107.5) == (8, pytest.approx(0.5))


def test_counters_read_less_often_keep_their_last_rate(clock):
    slow = reading(disk_read_bytes=0.0)
    no_io = {k: v for k, v in reading().items() if not k.startswith(("disk", "net"))}
    sampler = SystemSampler(
        FakeReader([slow, reading(disk_read_bytes=3000.0), no_io, reading(disk_read_bytes=9000.0)]),
        clock=clock,
    )
    sampler.tick()
    clock.advance(1)
    assert sampler.tick()["disk_read_bytes_per_s"] == 3000.0
    clock.advance(1)
    assert sampler.tick()["disk_read_bytes_per_s"] == 3000.0  # not read: the last rate stands
    clock.advance(1)
    assert sampler.tick()["disk_read_bytes_per_s"] == 3000.0  # 6000 bytes over the 2 s since the last read

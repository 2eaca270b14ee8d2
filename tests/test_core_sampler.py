from __future__ import annotations

import threading

import pytest

from live_monitor.core.sampler import PsutilReader, SystemSampler
from tests.helpers import FakeClock, FakeReader, reading


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
    seen: list[dict[str, float]] = []
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
    from live_monitor.core.sampler import next_tick

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


# --- the direct /proc reader -----------------------------------------------------------------

STAT = b"""cpu  1000 50 300 8000 200 10 20 5 40 0
cpu0 500 25 150 4000 100 5 10 2 20 0
intr 12345 0 0
"""

MEMINFO = b"""MemTotal:       16000000 kB
MemFree:         4000000 kB
MemAvailable:   12000000 kB
Buffers:          100000 kB
Cached:          6000000 kB
"""

DISKSTATS = b"""   7       0 loop0 10 0 80 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 386194 25592 1000 433569 134567 207539 3000 125968 0 53868 580359 153423 153 18420136 15099 29427 5722
 254       1 vda1 300000 25000 900 400000 130000 200000 2900 120000 0 50000 560000 0 0 0 0 0 0
"""

NET_DEV = b"""Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    5000      50    0    0    0     0          0         0     5000      50    0    0    0     0       0          0
  eth0: 1200000    900    0    0    0     0          0         0   340000     700    0    0    0     0       0          0
"""


def test_stat_gives_busy_idle_and_iowait_jiffies():
    from live_monitor.core.sampler import parse_stat

    # busy = user + nice + system + irq + softirq + steal; guest is already inside user
    assert parse_stat(STAT) == (1000 + 50 + 300 + 10 + 20 + 5, 8000, 200)
    with pytest.raises(ValueError):
        parse_stat(b"intr 1 2 3\n")


def test_cpu_percent_is_the_busy_share_and_clips_counters_that_step_back():
    from live_monitor.core.sampler import cpu_percent

    assert cpu_percent((100, 800, 100), (150, 1000, 100)) == 20.0
    assert cpu_percent((100, 800, 100), (150, 1000, 50)) == 20.0  # iowait stepped back: counts as 0
    assert cpu_percent((100, 800, 100), (100, 800, 100)) == 0.0  # no time passed


def test_meminfo_gives_psutils_used_percent_from_memavailable():
    from live_monitor.core.sampler import parse_meminfo

    assert parse_meminfo(MEMINFO) == 25.0
    # more available than total (a container's figures): psutil uses MemFree instead
    assert parse_meminfo(MEMINFO.replace(b"12000000", b"99000000")) == 75.0
    # MemAvailable missing or 0: psutil estimates it, the caller asks psutil
    assert parse_meminfo(b"MemTotal: 16000000 kB\nMemFree: 4000000 kB\nBuffers: 1 kB\n") is None
    assert parse_meminfo(MEMINFO.replace(b"12000000", b"0")) is None


def test_diskstats_sums_whole_disks_in_bytes_and_leaves_partitions_out():
    from live_monitor.core.sampler import parse_diskstats

    assert parse_diskstats(DISKSTATS, {b"loop0", b"vda"}.__contains__) == ((80 + 1000) * 512, 3000 * 512)


def test_net_dev_sums_every_interface():
    from live_monitor.core.sampler import parse_net_dev

    assert parse_net_dev(NET_DEV) == (1_205_000, 345_000)


def fake_proc(root, stat=STAT, meminfo=MEMINFO, statm=b"9000 2500 300 1 0 2000 0\n", net_dev=NET_DEV):
    (root / "self").mkdir(parents=True, exist_ok=True)
    (root / "net").mkdir(exist_ok=True)
    for name, text in (
        ("stat", stat),
        ("meminfo", meminfo),
        ("self/statm", statm),
        ("diskstats", DISKSTATS),
        ("net/dev", net_dev),
    ):
        (root / name).write_bytes(text)
    return root


def test_the_proc_reader_turns_files_into_exact_readings(tmp_path):
    import os

    from live_monitor.core.sampler import ProcReader

    proc = fake_proc(tmp_path / "proc")
    blocks = tmp_path / "block"
    for disk in ("loop0", "vda"):
        (blocks / disk).mkdir(parents=True)
    reader = ProcReader(io_every=2, proc=str(proc), sys_block=str(blocks))
    fake_proc(proc, stat=STAT.replace(b"cpu  1000 50 300 8000", b"cpu  1300 50 300 8700"))
    first = reader()
    assert first["cpu_percent"] == 30.0  # 300 busy jiffies of 1000
    assert first["memory_percent"] == 25.0
    assert first["process_rss_bytes"] == 2500 * os.sysconf("SC_PAGE_SIZE")
    assert first["disk_read_bytes"] == (80 + 1000) * 512
    assert first["net_recv_bytes"] == 1_205_000 and first["net_sent_bytes"] == 345_000
    assert "disk_read_bytes" not in reader()  # read every second call only
    assert reader()["disk_write_bytes"] == 3000 * 512
    reader.close()
    with pytest.raises(OSError):  # closed: an error, not another file's bytes
        reader()


def test_the_proc_reader_reads_a_file_longer_than_its_first_read(tmp_path):
    from live_monitor.core.sampler import ProcReader

    lines = b"".join(b"  veth%d: 10 1 0 0 0 0 0 0 20 1 0 0 0 0 0 0\n" % i for i in range(500))
    proc = fake_proc(tmp_path, net_dev=NET_DEV + lines)
    reading = ProcReader(proc=str(proc), sys_block=str(tmp_path / "none"))()
    assert reading["net_recv_bytes"] == 1_205_000 + 500 * 10
    assert reading["net_sent_bytes"] == 345_000 + 500 * 20
    assert reading["disk_read_bytes"] == 0.0  # no whole disk under this sys_block


def test_on_this_machine_proc_readings_agree_with_psutil():
    import os
    import sys

    import psutil

    from live_monitor.core.sampler import ProcReader, default_reader, parse_stat

    expected = ProcReader if sys.platform.startswith("linux") else PsutilReader
    assert isinstance(default_reader(), expected)
    reader = ProcReader()
    disk0, net0, cpu0 = psutil.disk_io_counters(), psutil.net_io_counters(), psutil.cpu_times()
    raw = reader()
    with open("/proc/stat", "rb") as stat:
        busy, idle, iowait = parse_stat(stat.read())
    disk1, net1, cpu1 = psutil.disk_io_counters(), psutil.net_io_counters(), psutil.cpu_times()
    assert disk0.read_bytes <= raw["disk_read_bytes"] <= disk1.read_bytes
    assert disk0.write_bytes <= raw["disk_write_bytes"] <= disk1.write_bytes
    assert net0.bytes_recv <= raw["net_recv_bytes"] <= net1.bytes_recv
    assert net0.bytes_sent <= raw["net_sent_bytes"] <= net1.bytes_sent
    hz = os.sysconf("SC_CLK_TCK")  # psutil's CPU times are /proc/stat jiffies divided by it
    assert cpu0.idle * hz - 1 <= idle <= cpu1.idle * hz + 1
    assert cpu0.iowait * hz - 1 <= iowait <= cpu1.iowait * hz + 1
    busy0 = (cpu0.user + cpu0.nice + cpu0.system + cpu0.irq + cpu0.softirq + cpu0.steal) * hz
    busy1 = (cpu1.user + cpu1.nice + cpu1.system + cpu1.irq + cpu1.softirq + cpu1.steal) * hz
    assert busy0 - 1 <= busy <= busy1 + 1
    assert abs(raw["memory_percent"] - psutil.virtual_memory().percent) < 1.0
    rss = psutil.Process().memory_info().rss
    assert abs(raw["process_rss_bytes"] - rss) < 0.05 * rss


def test_process_cpu_percent_follows_this_processs_work():
    import time

    from live_monitor.core.sampler import ProcReader

    for reader in (ProcReader(), PsutilReader()):
        reader()
        cpu0, wall0 = time.process_time(), time.monotonic()
        while time.process_time() - cpu0 < 0.2:  # busy for 0.2 s of CPU
            pass
        cpu1, wall1 = time.process_time(), time.monotonic()
        figure = reader()["process_cpu_percent"]
        # the share of one core this process got, however busy the machine is
        assert figure == pytest.approx(100 * (cpu1 - cpu0) / (wall1 - wall0), rel=0.2)


@pytest.mark.parametrize("kind", ["ProcReader", "PsutilReader"])
def test_a_forked_child_reads_its_own_memory_not_its_parents(kind):
    import os

    from live_monitor.core import sampler as system_sampler

    reader = getattr(system_sampler, kind)()
    reader()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child grows by 64 MiB and reports how much the reader saw it grow
        try:
            before = reader()["process_rss_bytes"]
            grown = bytearray(64 * 1024 * 1024)
            grown[::4096] = b"x" * len(grown[::4096])
            os.write(write_end, str(int(reader()["process_rss_bytes"] - before)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    growth = int(os.read(read_end, 64))
    os.close(read_end)
    os.waitpid(pid, 0)
    assert growth > 48 * 1024 * 1024


def test_stop_wakes_the_thread_at_once_instead_of_at_the_next_tick():
    import time

    ticked = threading.Event()
    sampler = SystemSampler(FakeReader([reading()]), interval=3600, on_tick=lambda s: ticked.set())
    sampler.start()
    assert ticked.wait(5)
    began = time.monotonic()
    assert sampler.stop(timeout=30) is True
    assert time.monotonic() - began < 5
    assert "live-monitor-sampler" not in [t.name for t in threading.enumerate()]
    assert sampler.start() is True  # and it starts again after a stop
    sampler.stop()

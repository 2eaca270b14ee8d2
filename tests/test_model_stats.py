from __future__ import annotations

import random

import pytest

from live_monitor.model.stats import (
    DURATION_BOUNDS_MS,
    MAX_KEYS,
    OTHER,
    Aggregate,
    Histogram,
    LatencySketch,
    PairStats,
    SideStats,
)


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sketch_quantiles_are_within_one_percent_of_exact(seed):
    rng = random.Random(seed)
    values = [rng.lognormvariate(4, 1.2) for _ in range(20_000)]
    sketch = LatencySketch()
    for v in values:
        sketch.add(v)
    for q in (0.5, 0.95, 0.99):
        exact = exact_quantile(values, q)
        estimate = sketch.quantile(q)
        assert estimate is not None and abs(estimate - exact) / exact <= 0.01 + 1e-9
    assert sketch.count == 20_000
    assert sketch.mean == pytest.approx(sum(values) / len(values))


def test_empty_sketch_has_no_quantile():
    assert LatencySketch().quantile(0.5) is None
    assert LatencySketch().mean is None


def test_zero_durations_count():
    sketch = LatencySketch()
    for v in (0.0, 0.0, 0.0, 10.0):
        sketch.add(v)
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == pytest.approx(10.0, rel=0.01)


def test_merge_then_subtract_restores_the_original():
    a, b = LatencySketch(), LatencySketch()
    for v in range(1, 101):
        a.add(float(v))
    for v in range(1000, 1100):
        b.add(float(v))
    median = a.quantile(0.5)
    a.merge(b)
    assert a.count == 200
    assert (a.quantile(0.9) or 0) > 900
    a.subtract(b)
    assert a.count == 100
    assert a.quantile(0.5) == median
    assert a.max < 101 * 1.02


def test_untimed_events_count_but_stay_out_of_durations():
    agg = Aggregate()
    agg.add(100.0, False, 1.0)
    agg.add(None, False, 2.0)
    agg.add(None, True, 3.0)
    assert agg.count == 3
    assert agg.errors == 1
    assert agg.timed.count == 1
    assert agg.figures()["avg_ms"] == 100.0
    assert agg.success_rate == pytest.approx(2 / 3)


def test_only_http_and_api_events_make_endpoints():
    backend = SideStats("backend")
    backend.add("http", "GET /x", 5.0, False, 0.0)
    backend.add("db", "query", 2.0, False, 0.0)
    frontend = SideStats("frontend")
    frontend.add("api", "GET /x", 9.0, False, 0.0)
    frontend.add("click", "button#go", None, False, 0.0)
    assert list(backend.endpoints) == ["GET /x"]
    assert list(frontend.endpoints) == ["GET /x"]
    assert frontend.components == {"api": 1, "click": 1}


def test_endpoint_keys_are_bounded():
    side = SideStats("backend")
    for i in range(MAX_KEYS + 50):
        side.add("http", f"GET /raw/{i}x", 1.0, False, 0.0)
    assert len(side.endpoints) == MAX_KEYS + 1
    assert side.endpoints[OTHER].count == 50


def test_pair_stats_subtract_removes_a_bucket():
    total, bucket = PairStats(), PairStats()
    bucket.backend.add("http", "GET /x", 5.0, False, 0.0)
    bucket.add_gap("GET /x", 30.0)
    total.merge(bucket)
    total.frontend.add("api", "GET /y", 1.0, False, 0.0)
    total.subtract(bucket)
    assert total.backend.total.count == 0
    assert "GET /x" not in total.backend.endpoints
    assert total.trace_gaps == {}
    assert total.frontend.total.count == 1


def test_the_key_cap_holds_across_merged_buckets():
    total = SideStats("backend")
    for bucket in range(3):
        side = SideStats("backend")
        for i in range(MAX_KEYS):
            side.add("http", f"GET /b{bucket}/k{i}x", 1.0, False, 0.0)
        total.merge(side)
    assert len(total.endpoints) == MAX_KEYS + 1
    assert total.total.count == 3 * MAX_KEYS == sum(a.count for a in total.endpoints.values())


def test_tail_quantiles_of_few_samples_are_not_read_low():
    sketch = LatencySketch()
    for v in (1.7, 37.8):
        sketch.add(v)
    assert sketch.quantile(0.95) == pytest.approx(37.8, rel=0.01)
    five = LatencySketch()
    for v in (1.0, 2.0, 3.0, 4.0, 500.0):
        five.add(v)
    assert five.quantile(0.99) == pytest.approx(500.0, rel=0.01)


def test_the_api_calls_aggregate_survives_merging_buckets():
    total = SideStats("backend")
    for duration in (10.0, 30.0):
        bucket = SideStats("backend")
        bucket.add("http", "GET /x", duration, False, 0.0)
        bucket.add("db", "query", 1000.0, False, 0.0)
        total.merge(bucket)
    assert total.api.count == 2 and total.api.timed.mean == 20.0


def test_buffered_values_give_the_figures_of_eager_ones():
    rng = random.Random(3)
    values = [rng.lognormvariate(2, 1.5) for _ in range(10_000)] + [0.0] * 50
    one, many = LatencySketch(), LatencySketch()
    for value in values:
        one.add(value)
        one.quantile(0.5)  # a read in between buckets what is buffered so far
    for start in range(0, len(values), 999):
        many.extend(values[start : start + 999])
    assert (many.count, many.zeros, many.min, many.max) == (one.count, one.zeros, one.min, one.max)
    assert many.sum == pytest.approx(one.sum)
    qs = (0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)
    assert many.quantiles(qs) == one.quantiles(qs)
    assert many.buckets == one.buckets


def test_an_average_reads_the_same_whatever_order_its_values_were_summed_in():
    """The dashboard merges time buckets, the report sums in one pass: a mean of exactly 14.225
    (17.1, 15.6, 12.2, 12 ms, as a recorded browser sent them) shows as one figure in both."""
    values = [17.1, 15.6, 12.2, 12.0]
    in_one = Aggregate()
    for value in values:
        in_one.add(value, False, 0.0)
    first, rest = Aggregate(), Aggregate()
    first.add(values[0], False, 0.0)
    for value in values[1:]:
        rest.add(value, False, 0.0)
    merged = Aggregate()
    merged.merge(first)
    merged.merge(rest)
    assert in_one.timed.sum != merged.timed.sum  # the float sums do differ
    assert in_one.figures()["avg_ms"] == merged.figures()["avg_ms"] == 14.22


@pytest.mark.parametrize("size", [1, 3, 8, 9, 40])
def test_a_histogram_counts_a_value_on_a_bound_in_that_bound_whatever_the_batch_size(size):
    """A few values are placed one by one, more through the sorted batch: the same buckets
    (a value equal to a bound is in that bound's, ``le``) and the same sum either way."""
    rng = random.Random(size)
    pool = [*DURATION_BOUNDS_MS, 0.0, 4.999, 5.001, 10_000.5, 1e6]
    values = [rng.choice(pool) if rng.random() < 0.5 else rng.uniform(0, 12_000) for _ in range(size)]
    histogram = Histogram()
    histogram.extend(values)
    histogram.extend(values[:2])
    expected = [0] * (len(DURATION_BOUNDS_MS) + 1)
    for value in values + values[:2]:
        expected[next((i for i, b in enumerate(DURATION_BOUNDS_MS) if value <= b), -1)] += 1
    assert histogram.buckets == expected
    assert histogram.sum == sum(sorted(values)) + sum(sorted(values[:2]))

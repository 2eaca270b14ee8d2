"""Row scrub-linear: scrubbing never costs the square of a text's size.

Moved here from the test suite (nothing timed belongs there): each shape repeats what one
scrubbing rule starts with, so a rule that backs off or starts again inside what it scanned
would take four times as long on twice the text. The review that found one such rule measured
a single 8 KiB value at 0.2 s, a batch of them holding a worker for 25 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from benchmarks.common import Context, Row, Target, median

SIZES = (8192, 16384)  # as much as a details value holds, and twice that

# Shapes that repeat what one rule starts with, each built to ``size`` characters: a rule that
# backs off or starts again inside what it scanned costs the square of the size on one of them.
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "userinfo": lambda n: "@" + "=a:" * (n // 3),
    "userinfo, other separators": lambda n: "@" + ";a:b,c:" * (n // 7),
    "key=": lambda n: "token " + "a=" * (n // 2),
    "key: ": lambda n: "token " + "a: " * (n // 3),
    "quoted values": lambda n: "token " + 'a:"' * (n // 3),
    "secret keys": lambda n: "token=" * (n // 6),
    "header names": lambda n: "Authorization: " * (n // 15),
    "spaced names": lambda n: "api key x " * (n // 10),
    "Bearer": lambda n: "Bearer " * (n // 7),
    "Basic": lambda n: "Basic +" * (n // 7),
    "JWT": lambda n: "eyJaa." * (n // 6),
    "PEM without its end": lambda n: "-----BEGIN PRIVATE KEY-----" * (n // 27),
    "PEM ends": lambda n: "-----BEGIN PRIVATE KEY-----" + "-----END A " * (n // 11),
    "digits": lambda n: "1" * n + "a",
    "digit groups": lambda n: "1 " * (n // 2),
    "at signs": lambda n: "a:b@" * (n // 4),
}


def scrub_seconds(text: str, repeats: int) -> float:
    """The least of ``repeats`` timings of scrubbing ``text`` with a fresh scrubber, so no
    cache helps."""
    from live_monitor.model.scrub import Scrubber

    best = float("inf")
    for _ in range(repeats):
        scrubber = Scrubber()
        start = time.perf_counter()
        scrubber.text(text)
        best = min(best, time.perf_counter() - start)
    return best


def growth(shape: Callable[[int], str], rounds: int, repeats: int) -> float:
    """The median over ``rounds`` of the time on twice the text over the time on the text."""
    small, large = (shape(size) for size in SIZES)
    return median([scrub_seconds(large, repeats) / scrub_seconds(small, repeats) for _ in range(rounds)])


def scrub_rows(ctx: Context, wanted: set[str]) -> list[Row]:
    """The worst growth over the adversarial shapes: about 2 when every rule is linear, 4 when
    one is quadratic."""
    rounds, repeats = ctx.pick(3, 7), ctx.pick(3, 5)
    grown = {name: growth(shape, rounds, repeats) for name, shape in ADVERSARIAL.items()}
    worst = max(grown, key=grown.__getitem__)
    ctx.log(f"scrub: worst growth {grown[worst]:.2f}x ({worst})")
    return [
        Row(
            "scrub-linear",
            f"Scrubber.text time on 16 KiB against 8 KiB of adversarial text, worst of {len(grown)} shapes",
            f"{worst}: {scrub_seconds(ADVERSARIAL[worst](SIZES[1]), repeats) * 1e3:.2f} ms at 16 KiB",
            "the same shape at 8 KiB",
            grown[worst],
            Target("<=", 3.0),
            note="growth per shape: " + ", ".join(f"{n} {g:.2f}x" for n, g in grown.items()),
        )
    ]

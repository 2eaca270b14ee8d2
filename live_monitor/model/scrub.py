"""Secret scrubbing: what the monitor filters out of events before it keeps them."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["FILTERED", "scrub_details"]

FILTERED = "[Filtered]"
_MAX_INTERNED = 20_000

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|authori[sz]ation|api[-_]?key|cookie|session|credential", re.I
)
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")


_SECRET_VERDICTS: dict[str, bool] = {}
_DIGITS = b"0123456789"


def _has_card_digits(text: str) -> bool:
    """True when ``text`` may hold a card number: at least 13 digits (counted in C) and the pattern."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, _DIGITS)) >= 13 and _CARD.search(text) is not None


def _is_secret(key: str) -> bool:
    verdict = _SECRET_VERDICTS.get(key)
    if verdict is None:
        verdict = bool(_SECRET_KEY.search(key))
        if len(_SECRET_VERDICTS) < _MAX_INTERNED and len(key) <= 64:
            _SECRET_VERDICTS[key] = verdict
    return verdict


def scrub_details(details: dict[str, Any]) -> dict[str, Any]:
    """Replace secret-looking values in ``details`` with ``[Filtered]``.

    Keys such as password, token, secret, authorization, api_key and cookie are filtered,
    and so are card-like numbers (13 to 19 digits passing the Luhn check) in any string.
    The same dict comes back when nothing needed filtering.
    """
    clean: dict[str, Any] | None = None
    for key, value in details.items():
        new = FILTERED if _is_secret(key) else _scrub_value(value)
        if new is not value and clean is None:
            clean = dict(details)
        if clean is not None:
            clean[key] = new
    return details if clean is None else clean


def _scrub_value(value: Any) -> Any:
    kind = value.__class__
    if kind is str:
        if len(value) < 13 or not _has_card_digits(value):
            return value
        scrubbed = _CARD.sub(_mask_card, value)
        return value if scrubbed == value else scrubbed
    if kind is dict:
        return scrub_details(value)
    if kind is list:
        items = [_scrub_value(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _mask_card(match: re.Match[str]) -> str:
    digits = [int(c) for c in match.group() if c.isdigit()]
    checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return FILTERED if checksum % 10 == 0 else match.group()

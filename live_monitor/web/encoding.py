"""One JSON encoding for every answer of the web layer: plain data and msgspec Structs alike.

The monitor's results are typed (msgspec Structs such as the differences) or plain dicts;
the Flask routes (through ``JSONProvider``), the live stream and the ingest fast path
(through ``dumps``) all write them with the same rules, Flask's own otherwise: ASCII-only
output, keys in the order the data has them.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from flask.json.provider import DefaultJSONProvider

__all__ = ["JSONProvider", "dumps", "to_json"]

_flask_default = DefaultJSONProvider.default


def to_json(value: Any) -> Any:
    """The JSON-ready form of a value ``json`` cannot write itself (``default`` of json.dumps)."""
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value)
    return _flask_default(value)


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, knowing msgspec Structs, keeping the data's key order."""

    default = staticmethod(to_json)
    sort_keys = False


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``, as the Flask routes write it."""
    return json.dumps(value, default=to_json, ensure_ascii=True, separators=(",", ":"))

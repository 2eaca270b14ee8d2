"""Secret scrubbing: what the monitor filters out of every event before it keeps it.

The rules follow the idea of Sentry Relay's default PII rules. Every field that can carry text
is scrubbed (``details`` keys and values at any depth, ``action``, ``component``, ``release``,
``environment``), and each secret becomes ``[Filtered]``:

- a value under a secret key name (``password``, ``api_key``, ``Authorization``, ...; see
  ``secret_key``): names are compared lowercase with their separators dropped, so ``Api-Key``,
  ``api key`` and ``API_KEY`` are one name; ``--scrub-keys`` adds names;
- card numbers: 13 to 19 digits that start as a card network's do (2221-2720, 3, 4, 5, 6) and pass
  the Luhn check, written with or without a separator between digit groups (space, dash, dot,
  non-breaking or thin space), in text, as JSON numbers and as keys;
- in text: the value of a ``key=value`` or ``key: value`` pair under a secret name, also one
  written with spaces (``api key: x``): a query or form value up to ``&``, a quoted one inside
  its quotes, a header dump's (``Authorization: Digest ...``, ``Cookie: a=1; b=2``) to the end
  of its line; credentials before a host (``https://user:pw@host`` ->
  ``https://[Filtered]@host``, with or without a scheme; ``https://TOKEN@host``),
  ``Bearer``/``Basic`` tokens, JWTs and the body of PEM private key blocks;
- endpoint actions (``http``, ``api``, ``http-client``) lose their query string altogether:
  ``POST /login?password=x`` is kept as ``POST /login``.

Scrubbing runs on every event at ingest (``events.prepare_events``) and on every record the
file tools read, so clean data stays cheap: key verdicts and clean short strings are cached,
and a few substring checks and a digit count tell whether a string could hold anything to
filter at all before any regular expression runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

from live_monitor.vocabulary import ENDPOINT_COMPONENTS, MAX_ACTION, MAX_COMPONENT, OUTGOING_COMPONENT

__all__ = ["DEFAULT", "FILTERED", "Scrubber", "is_card_number", "normalise_key", "scrub_details"]

FILTERED = "[Filtered]"
_MAX_CACHED = 20_000  # entries per cache, which starts over when full (see _remember)
_SHARED_DETAILS = 1024  # distinct details kept to be shared (see Scrubber._shared_details)
_SHARED_KEYS = 8  # details with more keys are not shared
_SHARED_INT_BELOW = 1000  # ints below it (statuses, small counts) may repeat; larger ones vary
_MAX_CACHED_LENGTH = 64  # longer keys and strings are checked every time, never kept
# Deeper than an event may nest (events are refused past 32 levels): a structure this deep,
# which no validated event holds, is filtered whole rather than walked.
_MAX_DEPTH = 64
_ENDPOINT_COMPONENTS = frozenset({*ENDPOINT_COMPONENTS.values(), OUTGOING_COMPONENT})

# --- key names -------------------------------------------------------------------------------

# Secret wherever they appear in a normalised name (lowercase, separators dropped).
_ANYWHERE = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "privatekey",
    "accesskey",  # aws_access_key_id
    "authorization",
    "authorisation",
    "credential",
    "cookie",  # set-cookie
    "csrf",
    "xsrf",
    "bearer",
    "jwt",
    "creditcard",
    "cardnum",
    "signature",  # presigned URLs: X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token
    "sessionid",
    "sessionkey",
    "sessid",  # PHPSESSID
)
# Secret as a word of the name that ends it or is followed by one of _SUFFIXES (``session``,
# ``session_id``, ``user_pin``), but not ``session_count``, ``token_count`` or ``card_type``.
_WORDS = frozenset(
    {
        "token",
        "auth",
        "pwd",
        "pass",
        "session",
        "ssn",
        "cvv",
        "cvv2",
        "cvc",
        "cvc2",
        "pin",
        "card",
        "otp",
        "sid",
    }
)
_WORD_ENDINGS = ("token", "auth")  # one word ending so is a word of its own: accesstoken, oauth
_SUFFIXES = frozenset(
    {
        "id",
        "ids",
        "key",
        "no",
        "num",
        "number",
        "nr",
        "code",
        "value",
        "hash",
        "header",
        "string",
        "str",
        "text",
    }
)
_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])[0-9]*|[A-Z]?[a-z]+[0-9]*|[0-9]+")


def normalise_key(name: str) -> str:
    """``name`` lowercase with everything but letters and digits dropped: ``Api-Key`` -> ``apikey``."""
    return "".join(_NAME_WORD.findall(name)).lower()


# --- text ------------------------------------------------------------------------------------

_CARD_SEPARATORS = "[ \t.\\-\u00a0\u2007\u2009\u202f\u2013]"
# A run of at least 13 digits with single separators; not the tail of a word, a decimal, a
# negative number or a phone number (``+44 ...``). Which groups form the card: see _cards.
_CARD_RUN = rf"(?<![\w.,+\-])[0-9](?:{_CARD_SEPARATORS}?[0-9]){{12,}}(?![\w])"
# Each rule is linear: it starts only where a token starts (a lookbehind), scans that token at
# most once (possessive quantifiers: no backing off) and is never tried again inside it, so no
# string costs more than a few passes over it however it repeats a rule's first characters.
_TEXT_RULES = (
    r"(?P<pem>-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----)[\s\S]*?(?P<pem_end>-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z)",
    # URL credentials, with or without a scheme (``redis://:pw@host``, ``user:pw@host``, a URL
    # whose slashes a path normaliser merged): a token that ends before a host's ``@``, matched
    # once from its first character; which part of it is the user and password: _userinfo
    r"(?P<userinfo>(?<![^\s/?#@\"'<>])[^\s/?#@\"'<>]++)@(?=[A-Za-z0-9\[])",
    r"(?P<scheme>\b(?:[Bb]earer|BEARER)\s++)[A-Za-z0-9._~+/\-]{8,}+=*+",
    # Basic's value is base64: not a lowercase English word (``basic usage`` is kept)
    r"(?P<basic>\b(?:[Bb]asic|BASIC)\s++)(?=[a-z]*+[A-Z0-9+/])[A-Za-z0-9+/]{8,}+=*+",
    r"(?P<jwt>(?<![\w-])eyJ[A-Za-z0-9_\-]{2,}+\.[A-Za-z0-9_\-]{2,}+(?:\.[A-Za-z0-9_\-]*+)*+)",
    # key, then separator; the value is read only after a secret key (_value), so the scan goes
    # on inside it when the key is not a secret one
    r"(?P<key>(?<![\w.\[\]\-])[A-Za-z_][\w.\[\]\-]{0,63}+)(?P<sep>[\"']?[ \t]*+[:=][ \t]*+)",
)
_TEXT = re.compile("|".join(_TEXT_RULES))
# Where the user and password of a userinfo token may start: the token's start unless a ``?``,
# ``#``, ``@`` or ``>`` comes before it (``?next=user:pw@host``), else just after one of these.
_USERINFO_OPENERS = re.compile(r"[=;,(\[]")
_URL_SCHEMES = ("http://", "https://")  # a lone user before their host is a token (ghp_...@github.com)
# A secret key's value: quoted, else (``_value``) to the end of the line after a header name
# (``Authorization: token ghp_...``, ``Cookie: a=1; b=2``), else up to ``&``, ``;``, a space...
_QUOTED = re.compile(r"\"[^\"\n]*+\"|'[^'\n]*+'")
_LINE = re.compile(r"[^\r\n]*+")
_PAIR = re.compile(
    r"(?i:(?:bearer|basic|digest|negotiate|ntlm|token|aws4-hmac-sha256)[ \t]++)?[^\s&#;,\"'<>]++"
)
# A word before a key that is no secret name alone (``api key: x``, ``private key=x``), looked
# for in the characters before the key only.
_WORD = re.compile(r"[A-Za-z][\w.\-]{0,31}")
_WORDS_BACK = 100
# a UUID is skipped whole: its digit groups must not be read as a card number
_CARDS = re.compile(
    rf"(?<![\w-])[0-9A-Fa-f]{{8}}(?:-[0-9A-Fa-f]{{4}}){{3}}-[0-9A-Fa-f]{{12}}(?![\w-])|(?P<card>{_CARD_RUN})"
)
# What a card's digit run needs at least: a digit and 12 more digits or separators (cheap to find).
_CARD_CANDIDATE = re.compile(r"[0-9][0-9 \t.\-\u00a0\u2007\u2009\u202f\u2013]{12,}")
_DIGITS = b"0123456789"
_CARD_GROUP = re.compile("[0-9]+")


def _stems(extra: Iterable[str]) -> tuple[str, ...]:
    """Lowercase words one of which any secret key name written in text holds, whatever its
    separators: the built-in names' (``key`` for ``api_key``, ``private_key``, ...) and the
    longest word of each name given (``--scrub-keys``); none holds another."""
    stems = {*_WORDS, *_ANYWHERE, "key"}
    stems |= {max(_NAME_WORD.findall(name) or [name], key=len).lower() for name in extra}
    return tuple(sorted(stem for stem in stems if not any(s != stem and s in stem for s in stems)))


def is_card_number(digits: str) -> bool:
    """True when ``digits`` (digits only) could be a payment card's number: 13 to 19 digits,
    a card network's first digits (2221-2720, 3, 4, 5, 6: not 1, which epoch times in
    milliseconds and more start with, nor 20, which compact dates start with) and a valid
    Luhn check digit."""
    if not 13 <= len(digits) <= 19:
        return False
    first = digits[0]
    if first not in "3456" and not (first == "2" and "2221" <= digits[:4] <= "2720"):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _cards(run: str) -> list[tuple[int, int]]:
    """The spans of card numbers inside one digit run: the whole run, else consecutive digit
    groups of three or more digits, the last one maybe shorter (``4000 0000 0000 6``):
    ``4111 1111 1111 1111 12/27`` holds one card; ``1.5 2.5 3.5 ...``, numbers written with a
    separator, holds none."""
    if is_card_number(run.translate(_NO_SEPARATORS)):
        return [(0, len(run))]
    groups = [g.span() for g in _CARD_GROUP.finditer(run)]
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(groups):
        digits, last = "", None  # the digits of groups i..j, and the last j that makes a card
        for j in range(i, min(len(groups), i + _MAX_CARD_GROUPS)):
            start, end = groups[j]
            digits += run[start:end]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and is_card_number(digits):
                last = j
            if end - start < 3:  # only the last group of a card may be that short
                break
        if last is None:
            i += 1
        else:
            found.append((groups[i][0], groups[last][1]))
            i = last + 1
    return found


_MAX_CARD_GROUPS = 7  # 19 digits in groups of three or more, the last maybe shorter
_NO_SEPARATORS = str.maketrans("", "", " \t.-\u00a0\u2007\u2009\u202f\u2013")


def _may_hold_card(text: str) -> bool:
    """False when ``text`` cannot hold a card number: fewer than 13 digits (counted in C), or
    no run of 13 digits and separators."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, _DIGITS)) >= 13 and _CARD_CANDIDATE.search(text) is not None


def _mask_cards(text: str) -> str:
    """``text`` with each card number in it replaced by ``[Filtered]`` (UUIDs left alone)."""
    out: list[str] = []
    done = 0
    for match in _CARDS.finditer(text):
        if match.group("card") is None:
            continue
        for start, stop in _cards(match.group()):
            out.append(text[done : match.start() + start])
            out.append(FILTERED)
            done = match.start() + stop
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _userinfo(text: str, start: int, at: int) -> tuple[int, int] | None:
    """The span of the credentials in the token ``text[start:at]`` that ends before a host's
    ``@``: from the token's start (or just after its first ``=``, ``;``, ``,``, ``(`` or ``[``
    when a ``?``, ``#``, ``@`` or ``>`` comes before it) when a ``:`` and a password follow; the
    whole token after ``http(s)://`` (``https://ghp_TOKEN@github.com``); else None."""
    if start and text[start - 1] in "?#@>":
        opener = _USERINFO_OPENERS.search(text, start, at)
        if opener is None:
            return None
        start = opener.end()
    colon = text.find(":", start, at)
    if 0 <= colon < at - 1:
        return (start, at)
    if text.endswith(_URL_SCHEMES, max(0, start - 8), start):
        return (start, at)
    return None


def _value(text: str, key: re.Match[str]) -> tuple[int, int]:
    """The span of the value after a secret key: inside its quotes; else to the end of the line
    after a header name (``Name: value``) or any cookie; else one query or form value."""
    start = key.end("sep")
    quoted = _QUOTED.match(text, start)
    if quoted is not None:
        return (start + 1, quoted.end() - 1)
    sep = key.group("sep")
    to_line = (":" in sep and sep[0] not in "\"'") or "cookie" in key.group("key").lower()
    value = (_LINE if to_line or text.startswith(('"', "'"), start) else _PAIR).match(text, start)
    assert value is not None  # both match the empty string
    return (start, len(value.group().rstrip()) + start)


# --- the scrubber ----------------------------------------------------------------------------

_V = TypeVar("_V")


def _no_longer(scrubbed: str, limit: int) -> str:
    """``scrubbed`` cut to the field's ``limit`` (``a:b@h`` grows into ``[Filtered]@h``), so a
    scrubbed name still fits the limits the event was checked against, and a journaled event is
    not refused when it is read back."""
    return scrubbed if len(scrubbed) <= limit else scrubbed[:limit]


def _remember(cache: dict[str, _V], key: str, value: _V) -> _V:
    """Keep ``value`` under ``key`` and return it; a full cache starts over, so a flood of
    distinct strings bounds the memory and never stops the sharing of those that repeat."""
    if len(cache) >= _MAX_CACHED:
        cache.clear()
    cache[key] = value
    return value


# A key's verdict, two bits: its value is filtered (a secret name), the key itself holds a secret.
_CLEAN, _SECRET_NAME, _DIRTY_NAME = 0, 1, 2


class Scrubber:
    """Filters secrets out of event fields; ``extra_keys`` are names to filter besides the
    built-in list (``--scrub-keys``), matched anywhere in a normalised key name.

    A Scrubber owns its caches (key verdicts, clean short strings, scrubbed names), each
    bounded; callers on many threads may share one, as a cache entry is one dict store.
    """

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        names = list(extra_keys)
        self.extra_keys = tuple(sorted({n for key in names if (n := normalise_key(key))}))
        self._stems = _stems(names)
        self._verdicts: dict[str, int] = {}
        self.clean_strings: dict[str, str] = {}  # short strings found clean, shared by events
        self.clean_details: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}  # details, shared
        self.names: dict[str, str] = {}  # components, and actions without a query, as kept
        self._endpoints: dict[str, str] = {}  # endpoint actions with a query, as kept
        self._others: dict[str, str] = {}  # other names with ``?`` or ``#``, as kept
        self._text_keys: dict[str, bool] = {}  # whether a key in text (64 characters at most) is secret

    @classmethod
    def from_setting(cls, text: str) -> Scrubber:
        """The scrubber for a ``--scrub-keys`` value: names separated by commas."""
        return cls(name.strip() for name in text.split(",") if name.strip())

    # --- names ------------------------------------------------------------------------

    def secret_key(self, key: str) -> bool:
        """True when values under ``key`` are filtered: a built-in secret name, or one given."""
        words = [word.lower() for word in _NAME_WORD.findall(key)]
        name = "".join(words)
        if any(term in name for term in _ANYWHERE) or any(term in name for term in self.extra_keys):
            return True
        for i, word in enumerate(words):
            if word in _WORDS or word.endswith(_WORD_ENDINGS):
                if i + 1 == len(words) or words[i + 1] in _SUFFIXES:
                    return True
        return False

    def _verdict(self, key: str) -> int:
        """Whether ``key`` is a secret name and whether it holds a secret itself (cached)."""
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = (_SECRET_NAME if self.secret_key(key) else _CLEAN) | (
                _CLEAN if self.text(key) is key else _DIRTY_NAME
            )
            if len(key) <= _MAX_CACHED_LENGTH:
                _remember(self._verdicts, key, verdict)
        return verdict

    def component(self, component: str) -> str:
        """An event's component as kept (scrubbed like text; cached, so repeats are shared)."""
        kept = self.names.get(component)
        return self._plain(component, MAX_COMPONENT) if kept is None else kept

    def action(self, component: str, action: str) -> str:
        """An event's action as kept: an endpoint's without its query string, any scrubbed as
        text; cached, so the few actions that repeat across events are shared.

        ``names`` holds components and actions without ``?`` or ``#``, kept alike whatever the
        component, so a caller may look an action up there first.
        """
        kept = self.names.get(action)
        if kept is not None:
            return kept
        if component not in _ENDPOINT_COMPONENTS or ("?" not in action and "#" not in action):
            return self._plain(action, MAX_ACTION)
        kept = self._endpoints.get(action)
        if kept is None:
            cut = action.split("?", 1)[0].split("#", 1)[0].rstrip() or FILTERED
            kept = _remember(self._endpoints, action, _no_longer(self.text(cut), MAX_ACTION))
        return kept

    def _plain(self, name: str, limit: int) -> str:
        """``name`` scrubbed as text, from (or into) ``names``, or another cache when it holds a
        ``?`` or ``#``, which an endpoint's action would lose."""
        cache = self._others if "?" in name or "#" in name else self.names
        kept = cache.get(name)
        return _remember(cache, name, _no_longer(self.text(name), limit)) if kept is None else kept

    def _label(self, label: str | None) -> str | None:
        """An event's release or environment as kept: scrubbed like text (shared, as names are)
        and never longer than sent, so the event still fits the limits it was checked against."""
        if label is None:
            return None
        kept = self.names.get(label) or self._plain(label, len(label))
        return kept if len(kept) <= len(label) else kept[: len(label)]

    # --- values -----------------------------------------------------------------------

    def text(self, value: str) -> str:
        """``value`` with every secret the text rules find replaced by ``[Filtered]``; the same
        string when there is none (short clean strings are cached)."""
        if value in self.clean_strings:
            return value
        scrubbed = value
        if self._suspect(value):
            scrubbed = self._rewrite(value)
        if _may_hold_card(scrubbed):
            scrubbed = _mask_cards(scrubbed)
        if scrubbed != value:
            return scrubbed
        if len(value) <= _MAX_CACHED_LENGTH:
            _remember(self.clean_strings, value, value)
        return value

    def _suspect(self, value: str) -> bool:
        """False when no text rule but the card numbers' can find anything in ``value``: a few
        substring checks in C (one combined regular expression costs several times more in
        CPython's engine, which tries each alternative at each position)."""
        if "=" in value or ":" in value:  # a key=value or key: value pair, user:password@
            if "@" in value:
                return True
            low = value.lower()
            for stem in self._stems:
                if stem in low:
                    return True
        if "eyJ" in value or "-----BEGIN" in value:
            return True
        return "earer" in value or "EARER" in value or "asic" in value or "ASIC" in value

    def _rewrite(self, text: str) -> str:
        """Apply the text rules but the card numbers' left to right in one pass over ``text``."""
        out: list[str] = []
        pos = done = 0
        while (match := _TEXT.search(text, pos)) is not None:
            found = match.groupdict()
            kept: tuple[int, int] | None = None  # the span of a secret, replaced by FILTERED
            end = match.end()
            if found["key"] is not None:
                end = match.end("sep")
                if self._secret_name(text, match):
                    kept = _value(text, match)
                    end = max(end, kept[1])
            elif found["pem"] is not None:
                kept = (match.end("pem"), match.start("pem_end"))
            elif found["userinfo"] is not None:
                kept = _userinfo(text, match.start(), match.end("userinfo"))
                if kept is None:
                    end = match.start() + 1  # other rules may find something inside the token
            elif found["scheme"] is not None:
                kept = (match.end("scheme"), end)
            elif found["basic"] is not None:
                kept = (match.end("basic"), end)
            elif found["jwt"] is not None:
                kept = (match.start(), end)
            if kept is not None and kept[0] < kept[1]:
                out.append(text[done : kept[0]])
                out.append(FILTERED)
                done = kept[1]
            pos = max(end, pos + 1)
        if not out:
            return text
        out.append(text[done:])
        return "".join(out)

    def _secret_name(self, text: str, match: re.Match[str]) -> bool:
        """True when the key ``match`` found names a secret, alone or with the (up to three)
        words before it, separated by spaces: ``api key: x`` is ``api key``'s value."""
        key = match.group("key")
        secret = self._text_keys.get(key)
        if secret is None:
            secret = _remember(self._text_keys, key, self.secret_key(key))
        start = match.start()
        if secret or start == 0 or text[start - 1] not in " \t":
            return secret
        names: list[str] = []
        for word in reversed(text[max(0, start - _WORDS_BACK) : start].split()[-3:]):
            if _WORD.fullmatch(word) is None:
                break
            names.insert(0, word)
            if self.secret_key(" ".join([*names, key])):
                return True
        return False

    def number(self, value: int | float) -> int | float | str:
        """``[Filtered]`` for a number that is a card number (a JSON number such as
        ``4111111111111111``), else ``value``."""
        if -1e12 < value < 1e12 or not -1e19 < value < 1e19:  # card numbers have 13 to 19 digits
            return value
        if value.__class__ is float:
            if not value.is_integer():
                return value
            value = int(value)
        return FILTERED if is_card_number(str(abs(int(value)))) else value

    def value(self, value: Any, depth: int = 1) -> Any:
        """``value`` scrubbed, at any depth; the same object when nothing needed filtering."""
        kind = value.__class__
        if kind is str:
            return self.text(value)
        if kind is int or kind is float:
            return self.number(value)
        if kind is dict:
            return self.details(value, depth + 1)
        if kind is list or kind is tuple:
            if depth >= _MAX_DEPTH:
                return FILTERED
            items = [self.value(item, depth + 1) for item in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        return value

    def details(self, details: dict[str, Any], depth: int = 1) -> dict[str, Any]:
        """``details`` with secret values, and keys that hold a secret, filtered at any depth;
        the same dict when nothing needed filtering, else a scrubbed copy (never changed in place)."""
        if depth >= _MAX_DEPTH:
            return {FILTERED: FILTERED}
        changed: list[tuple[str, Any]] | None = None
        for index, (key, value) in enumerate(details.items()):
            verdict = self._verdict(key) if key.__class__ is str else _CLEAN
            new_key = self.text(key) if verdict & _DIRTY_NAME else key
            new = FILTERED if verdict & _SECRET_NAME else self.value(value, depth)
            if changed is None and (new is not value or new_key is not key):
                changed = list(details.items())[:index]
            if changed is not None:
                changed.append((new_key, new))
        return details if changed is None else dict(changed)

    def prepare(self, events: Iterable[Any]) -> None:
        """Scrub events in place (objects with ``component``, ``action``, ``release`` and
        ``environment`` (text or None) and ``details``, a dict or None), sharing the strings that repeat across them: most of a stored event's
        memory.

        The fast path of ingest, in one loop: a cached name per component and action, one
        cached verdict per details key and one cached string per value in the common case.
        Only details that may hold a secret are walked again, by ``details``, which copies them.
        """
        names, verdicts, shared = self.names, self._verdicts, self.clean_strings
        for event in events:
            component = names.get(event.component) or self.component(event.component)
            event.action = names.get(event.action) or self.action(component, event.action)
            event.component = component
            if event.release is not None or event.environment is not None:
                event.release, event.environment = self._label(event.release), self._label(event.environment)
            details = event.details
            if not details:
                continue
            repeated = True  # every value a short text seen before, or an int: the whole may repeat
            for key, value in details.items():
                verdict = verdicts.get(key)
                if verdict is None:
                    verdict = self._verdict(key) if key.__class__ is str else _CLEAN
                if verdict:
                    break
                kind = value.__class__
                if kind is str:
                    known = shared.get(value)
                    if known is not None:
                        details[key] = known  # the same text, shared in place
                        continue
                    if self.text(value) is not value:
                        break
                elif kind is int and -1 < value < _SHARED_INT_BELOW:
                    continue  # a status or a small count: details holding one repeat as a whole
                elif (kind is int or kind is float) and -1e12 < value < 1e12:
                    pass  # a number that varies (bytes, ids, times): such details rarely repeat
                elif self.value(value) is not value:
                    break
                repeated = False
            else:
                if repeated and len(details) <= _SHARED_KEYS:
                    event.details = self._shared_details(details)
                continue
            event.details = self.details(details)

    def _shared_details(self, details: dict[str, Any]) -> dict[str, Any]:
        """One dict for all events whose details are the same (a server's ``{"http_status": 200,
        "route": "/api/orders/:id"}``): a dict of a few keys is the largest part of a stored
        event. The one kept is a copy, which no caller holds and nothing changes in place."""
        key = tuple(details.items())
        known = self.clean_details.get(key)
        if known is None:
            if len(self.clean_details) >= _SHARED_DETAILS:  # bounded apart from the strings'
                self.clean_details.clear()
            known = self.clean_details[key] = dict(details)
        return known


DEFAULT = Scrubber()  # the built-in rules: events built in Python are scrubbed with these


def scrub_details(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` scrubbed by the built-in rules (the monitor adds its ``--scrub-keys``)."""
    return DEFAULT.details(details)

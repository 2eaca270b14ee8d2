"""Where events are kept: in memory, in Redis, and the --persist journal."""


class StoreUnavailable(Exception):
    """A shared store (Redis) cannot be reached; the API answers 503 with Retry-After."""

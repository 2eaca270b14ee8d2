"""Where events are kept: in memory, in Redis, and the --persist journal."""

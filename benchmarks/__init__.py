"""The Live Execution Monitor's benchmark: ``python benchmarks/run.py`` (see run.py)."""

"""The Live Execution Monitor: watch a web app's backend and frontend at once and see where they differ."""

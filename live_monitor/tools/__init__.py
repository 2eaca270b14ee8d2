"""The command-line tools: event files, reports, log analysis, sample generation and replay."""

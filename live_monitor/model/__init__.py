"""What the monitor knows: events, their statistics, and the comparison of the two sides."""

"""The monitor itself: its state, the system sampler and the settings table."""

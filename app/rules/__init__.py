"""Rules: pure functions of time and data (rotations, legal clocks). No database, no I/O."""

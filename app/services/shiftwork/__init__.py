"""Shift work: handover, post-mortems, swaps, response templates, figures and the calendar."""

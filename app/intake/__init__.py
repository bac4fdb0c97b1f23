"""Intake: one module per event format, and the store that opens cases from them."""

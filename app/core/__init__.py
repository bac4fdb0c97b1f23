"""The core: the clock, errors, time parsing and text checks. Imports nothing of ours."""

"""The team file: parse, plan, apply and export responders, rotations and policies."""

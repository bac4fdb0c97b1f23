"""Vigil."""

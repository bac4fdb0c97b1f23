"""The escalation engine: finds due steps in the database, claims and pages them."""

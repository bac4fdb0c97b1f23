"""Notifiers: the channels a page goes out on (console, desktop, webhook, Apprise)."""

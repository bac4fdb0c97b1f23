"""The console's screens: the queue (home), help, and dialogs."""

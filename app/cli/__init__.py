"""The `vigil` command line: a small framework, one module per command group."""

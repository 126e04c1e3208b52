"""The HTTP API (SPEC §2): an app factory, one place for errors, one module per resource."""

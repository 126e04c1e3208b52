"""`python -m relayer.cli` runs the `alphagrid` command."""

from relayer.cli import app

app()

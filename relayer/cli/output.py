"""Where a command's words go: exactly one JSON document on stdout with `--json`, rich tables on stdout
otherwise; progress on stderr in both cases (stdout stays parseable)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout instead of tables.")
]


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped output is not wrapped at 80 columns: addresses and keys must stay whole.
    return Console(
        file=stream, stderr=stderr, width=None if stream.isatty() else 220, highlight=False, soft_wrap=True
    )


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out = _console(stderr=False)
        self.err = _console(stderr=True)

    def progress(self, message: str) -> None:
        self.err.print(f"[dim]•[/dim] {message}")

    def note(self, message: str) -> None:
        """A remark for a human; never on stdout in --json mode."""
        (self.err if self.as_json else self.out).print(message)

    def emit(self, doc: Mapping[str, Any], render: Callable[[Console], None]) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            sys.stdout.flush()
        else:
            render(self.out)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t


def fields(title: str | None, items: Sequence[tuple[str, object]]) -> Table:
    """A two-column key/value table."""
    t = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for k, v in items:
        t.add_row(k, "" if v is None else str(v))
    return t

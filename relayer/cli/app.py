"""The root of the `alphagrid` command and its error boundary.

`AlphaGridGroup.main` is the one place where a command's failure becomes `error: <reason>` on stderr
and an exit code (2 for usage, 1 for operational failures): typer/click usage errors and everything
`relayer.cli.errors.describe` knows. Anything else is a bug and still prints one line, unless
`ALPHAGRID_DEBUG=1` asks for the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from relayer.cli.errors import EXIT_FAILURE, EXIT_USAGE, describe, one_line


def fail(message: str, code: int) -> int:
    sys.stdout.flush()
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    return code


class AlphaGridGroup(TyperGroup):
    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        rv: Any = None
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except NoArgsIsHelpError as exc:
            # Building the exception rendered the help already (rich prints it); plain mode returns it.
            if exc.format_message():
                sys.stdout.write(exc.format_message() + "\n")
            code = 0
        except UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
            code = fail(exc.format_message() + hint, EXIT_USAGE)
        except ClickException as exc:
            code = fail(exc.format_message(), exc.exit_code or EXIT_FAILURE)
        except typer.Abort:
            code = fail("aborted", EXIT_FAILURE)
        except Exception as exc:
            described = describe(exc)
            if described is None:
                if os.environ.get("ALPHAGRID_DEBUG"):
                    raise
                described = (
                    EXIT_FAILURE,
                    f"unexpected {type(exc).__name__}: {exc} (ALPHAGRID_DEBUG=1 shows the traceback)",
                )
            code = fail(described[1], described[0])
        if standalone_mode:
            sys.exit(code)
        return rv if code == 0 else code


app = typer.Typer(
    cls=AlphaGridGroup,
    name="alphagrid",
    help="AlphaGrid operator tool: deploy, run a local stack, manage vaults, agents, tracks and prices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details to stderr.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

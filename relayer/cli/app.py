"""The root of the `alphagrid` command and its error boundary.

`AlphaGridGroup.main` is the one place where a command's failure becomes `error: <reason>` on stderr
and an exit code (2 for usage, 1 for operational failures): typer/click usage errors and everything
`relayer.cli.errors.describe` knows. Anything else is a bug and still prints one line, unless
`ALPHAGRID_DEBUG=1` asks for the traceback.

Commands are registered lazily (`AlphaGridGroup.lazy`: name → module, attribute, one-line help): a
command's module, and what it imports (web3, FastAPI, SQLAlchemy …), is imported only when that command
runs; `alphagrid --help` lists them from the one-line helps. `tests/cli/test_fast.py` checks that each
one-line help is the command's own.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import typer
import typer.main
from typer._click.core import Command, Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperCommand, TyperGroup

from relayer.cli.errors import EXIT_FAILURE, EXIT_USAGE, describe, one_line


def fail(message: str, code: int) -> int:
    sys.stdout.flush()
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    return code


def load_command(name: str, module: str, attribute: str) -> Command:
    """The click command typer builds for `module.attribute` (a command function or a sub-`Typer`)."""
    obj = getattr(importlib.import_module(module), attribute)
    if isinstance(obj, typer.Typer):
        group = typer.main.get_group(obj)
        group.name = name
        return group
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name)(obj)
    return typer.main.get_command(single)


class AlphaGridGroup(TyperGroup):
    lazy: ClassVar[dict[str, tuple[str, str, str]]] = {}
    _resolving = False

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self.lazy:
            return command
        module, attribute, help_line = self.lazy[cmd_name]
        if not self._resolving:  # listed in a help page: the one-line help is all it needs
            return TyperCommand(cmd_name, help=help_line)
        command = load_command(cmd_name, module, attribute)
        self.commands[cmd_name] = command
        return command

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        self._resolving = True
        try:
            return super().resolve_command(ctx, args)
        finally:
            self._resolving = False

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

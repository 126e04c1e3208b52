"""What a failed command says: one line, `error: <reason>`, and an exit code.

The command line's own errors are `CliError` (exit 1, an operational failure) and `BadInput` (exit 2,
the operator typed something that cannot work). Everything the layers below raise is mapped here, in
one place (`describe`), so no command needs a try/except of its own and no traceback reaches an
operator. `tests/cli/test_errors.py` checks each mapping.

Nothing heavy is imported here: an exception can only be an instance of a class whose module is loaded,
so `describe` looks the classes up in `sys.modules` (a light command never imports web3 to describe
an error web3 could not have raised).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import pydantic

    from relayer.amounts import AmountError

EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2


class CliError(Exception):
    """An operational failure the operator can act on (exit 1)."""

    exit_code = EXIT_FAILURE


class BadInput(CliError):  # noqa: N818
    """An argument that cannot work: malformed, out of range, or naming nothing on the chain (exit 2)."""

    exit_code = EXIT_USAGE


class NoManifest(CliError):  # noqa: N818
    def __init__(self, path: object) -> None:
        super().__init__(
            f"no deployment manifest at {path}: run `alphagrid up` (local chain) or `alphagrid deploy` first"
        )


class ChainUnreachable(CliError):  # noqa: N818
    def __init__(self, url: str) -> None:
        super().__init__(
            f"cannot reach the chain at {url} (is `alphagrid up` running, or ALPHAGRID_RPC_URL right?)"
        )


_AMOUNT_REASONS: Final = {
    "type": "not a string",
    "empty": "empty",
    "sign": "amounts are unsigned (no + or -)",
    "syntax": "not a plain decimal number such as 100 or 0.25",
    "leading_zero": "leading zero",
    "too_large": "too large",
}


def amount_message(exc: AmountError, what: str = "amount") -> str:
    if exc.reason == "too_many_decimals":
        reason = f"at most {exc.decimals} decimals"
    else:
        reason = _AMOUNT_REASONS.get(exc.reason, exc.reason)
    return f"invalid {what} {exc.text!r}: {reason}"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _settings_message(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    # A whole-settings check (keys, unknown variables) names its variable in the message itself.
    return (
        f"invalid configuration: ALPHAGRID_{loc.upper()}: {message}"
        if loc
        else f"invalid configuration: {message}"
    )


def _cls(module: str, name: str) -> Any:
    """The class `module.name` if its module is loaded, else a class nothing is an instance of."""
    loaded = sys.modules.get(module)
    found = getattr(loaded, name, None) if loaded is not None else None
    return found if isinstance(found, type) else _NeverRaisedError


class _NeverRaisedError(Exception):
    pass


def describe(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one-line reason) for every failure a command may meet; None for a bug."""
    if isinstance(exc, CliError):
        return exc.exit_code, one_line(str(exc))
    if isinstance(exc, _cls("relayer.amounts", "AmountError")):
        return EXIT_USAGE, amount_message(exc)
    if isinstance(exc, _cls("relayer.feed", "FeedStalledError")):
        return EXIT_FAILURE, one_line(str(exc))
    if isinstance(exc, _cls("relayer.feed", "FeedError")):
        return EXIT_USAGE, one_line(str(exc))
    if isinstance(
        exc,
        (
            _cls("relayer.chain.admin", "OperatorError"),
            _cls("relayer.chain.anvil", "AnvilError"),
            _cls("relayer.chain.artifacts", "ArtifactMissingError"),
            _cls("relayer.localstack", "StackError"),
        ),
    ):
        return EXIT_FAILURE, one_line(str(exc))
    if isinstance(exc, _cls("pydantic", "ValidationError")):
        if exc.title == "Settings":
            return EXIT_USAGE, _settings_message(exc)
        return EXIT_FAILURE, one_line(f"invalid {exc.title}: {exc.errors()[0].get('msg', '')}")
    if isinstance(exc, (_cls("requests", "ConnectionError"), _cls("requests", "Timeout"))):
        return EXIT_FAILURE, "lost the connection to the chain: " + one_line(str(exc))[:200]
    if isinstance(exc, _cls("web3.exceptions", "TimeExhausted")):
        return EXIT_FAILURE, "the chain did not mine the transaction in time: " + one_line(str(exc))
    if isinstance(exc, _cls("web3.exceptions", "ContractLogicError")):
        return EXIT_FAILURE, "a contract call reverted: " + one_line(str(exc.message or exc))
    if isinstance(exc, _cls("web3.exceptions", "Web3RPCError")):
        return EXIT_FAILURE, "the chain refused the request: " + one_line(str(exc.message or exc))
    if isinstance(exc, _cls("web3.exceptions", "Web3Exception")):
        return EXIT_FAILURE, one_line(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, _cls("subprocess", "SubprocessError")):
        return EXIT_FAILURE, one_line(str(exc))
    if isinstance(exc, OSError):
        return EXIT_FAILURE, one_line(str(exc))
    return None

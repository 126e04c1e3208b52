"""`alphagrid approvals list | approve ID | reject ID --reason TEXT | policy set|clear|list`: the human
approval gate (SPEC §5.5) on the relayer's database ($ALPHAGRID_DATABASE_URL), like `alphagrid keys`.

The decider is recorded as `--as NAME` (default `cli:<OS user>`). An approval here moves the intent to
`received`; the running relayer's dispatcher then runs every check again on the state of that moment
before it sends it (a failure rejects it with that check's code). Heavy imports happen inside."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from relayer.cli.keys import operator_db
from relayer.cli.output import JsonOption, Output, fields, table

if TYPE_CHECKING:
    from rich.console import Console

approvals_app = typer.Typer(
    help="Human approval: pending intents, approve or reject them, thresholds per track or agent.",
    no_args_is_help=True,
)
policy_app = typer.Typer(help="Approval thresholds per track or agent.", no_args_is_help=True)
approvals_app.add_typer(policy_app, name="policy")

AsOption = Annotated[
    str | None, typer.Option("--as", metavar="NAME", help="Who decides (default: cli:<OS user>).")
]
ApprovalId = Annotated[int, typer.Argument(metavar="ID", min=1, help="The approvalId.")]


def _decider(name: str | None) -> str:
    import getpass

    from relayer.cli.errors import BadInput

    who = name if name is not None else f"cli:{getpass.getuser()}"
    if not who.strip() or len(who) > 64:
        raise BadInput("--as: a name of 1 to 64 characters")
    return who


def _summary(doc: dict[str, Any]) -> list[tuple[str, object]]:
    return [
        ("approval", doc["approvalId"]),
        ("status", doc["status"]),
        ("intent", f"{doc['intentId']} ({doc['type']}, agent {doc['agentId']}, nonce {doc['nonce']})"),
        ("usdcAmount", doc["usdcAmount"]),
        ("intent status", doc["intent"]["status"]),
        ("decided by", doc["decidedBy"]),
        ("decided at", doc["decidedAt"]),
        ("reason", doc["reason"]),
    ]


@approvals_app.command("list")
def list_cmd(
    status: Annotated[
        str, typer.Option("--status", metavar="pending|approved|rejected|expired|all", help="Which ones.")
    ] = "pending",
    as_json: JsonOption = False,
) -> None:
    """The approvals (default: the pending ones), newest first."""
    from relayer.cli.errors import BadInput
    from relayer.operators import approvals

    if status != "all" and status not in {s.value for s in approvals.ApprovalStatus}:
        raise BadInput(f"invalid --status {status!r}")
    wanted = None if status == "all" else approvals.ApprovalStatus(status)
    out = Output(as_json)
    with operator_db() as session:
        docs = [approvals.approval_json(r) for r in approvals.list_approvals(session, wanted)]
    rows = [
        (
            d["approvalId"],
            d["status"],
            d["agentId"],
            d["type"],
            d["usdcAmount"],
            d["deadline"],
            d["decidedBy"],
        )
        for d in docs
    ]
    out.emit(
        {"approvals": docs},
        lambda console: console.print(
            table("Approvals", ("id", "status", "agent", "type", "usdc", "deadline", "decided by"), rows)
        ),
    )


def _decide(approval_id: int, who: str | None, reason: str | None, as_json: bool) -> None:
    import time

    from relayer.cli.errors import BadInput
    from relayer.operators import approvals

    by = _decider(who)
    out = Output(as_json)
    with operator_db() as session:
        row, refusal = approvals.decide_offline(session, approval_id, by, int(time.time()), reason=reason)
        doc = approvals.approval_json(row)
    if refusal is not None:
        raise BadInput(refusal.message)

    def render(console: Console) -> None:
        console.print(fields(f"Approval {approval_id}", _summary(doc)))

    out.emit(doc, render)


@approvals_app.command("approve")
def approve(approval_id: ApprovalId, who: AsOption = None, as_json: JsonOption = False) -> None:
    """Approve: the relayer checks it again on the state of the moment, then sends it."""
    _decide(approval_id, who, None, as_json)


@approvals_app.command("reject")
def reject(
    approval_id: ApprovalId,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the intent's history).")],
    who: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject: the intent ends rejected with approval_rejected."""
    _decide(approval_id, who, reason, as_json)


def _scope(track: str | None, agent: int | None) -> tuple[Any, str]:
    from relayer.cli.errors import BadInput
    from relayer.operators.approvals import PolicyScope

    if (track is None) == (agent is None):
        raise BadInput("give exactly one of --track NAME or --agent ID")
    if track is not None:
        return PolicyScope.TRACK, track
    return PolicyScope.AGENT, str(agent)


TrackOption = Annotated[str | None, typer.Option("--track", metavar="NAME", help="A track's name.")]
AgentOption = Annotated[int | None, typer.Option("--agent", metavar="ID", min=0, help="An agent's id.")]


@policy_app.command("set")
def policy_set(
    above: Annotated[
        str, typer.Option("--above", metavar="USDC", help="Opens and adds spending more wait (0: every one).")
    ],
    track: TrackOption = None,
    agent: AgentOption = None,
    who: AsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the threshold of a track or an agent (an agent's overrides its track's)."""
    from relayer.amounts import AmountError, parse_amount
    from relayer.cli.errors import BadInput
    from relayer.operators import approvals

    scope, target = _scope(track, agent)
    try:
        raw = parse_amount(above, approvals.USDC_DECIMALS)
    except AmountError as exc:
        raise BadInput(f"--above: {exc}") from None
    out = Output(as_json)
    with operator_db() as session:
        doc = approvals.policy_json(approvals.set_policy(session, scope, target, raw, _decider(who)))
    out.emit(
        doc,
        lambda console: console.print(
            f"Opens and adds above {doc['aboveUsdc']} USDC by {scope.value} {target} now wait for approval."
        ),
    )


@policy_app.command("clear")
def policy_clear(track: TrackOption = None, agent: AgentOption = None, as_json: JsonOption = False) -> None:
    """Remove the threshold of a track or an agent."""
    from relayer.cli.errors import BadInput
    from relayer.operators import approvals

    scope, target = _scope(track, agent)
    out = Output(as_json)
    with operator_db() as session:
        removed = approvals.clear_policy(session, scope, target)
    if not removed:
        raise BadInput(f"no approval policy for {scope.value} {target}")
    out.emit(
        {"scope": scope.value, "target": target, "cleared": True},
        lambda console: console.print(f"Approval policy of {scope.value} {target} cleared."),
    )


@policy_app.command("list")
def policy_list(as_json: JsonOption = False) -> None:
    """Every threshold."""
    from relayer.operators import approvals

    out = Output(as_json)
    with operator_db() as session:
        docs = approvals.policies(session)
    rows = [(d["scope"], d["target"], d["aboveUsdc"], d["setBy"], d["updatedAt"]) for d in docs]
    out.emit(
        {"policies": docs},
        lambda console: console.print(
            table("Approval policies", ("scope", "target", "above USDC", "set by", "updated"), rows)
        ),
    )

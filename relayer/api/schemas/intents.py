"""Submit and verify bodies, the intent record, and what verify answers (SPEC §2.3–2.5, §5.1)."""

# ruff: noqa: N815 - the wire format is camelCase

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue

from relayer.api.schemas.common import Public
from relayer.api.schemas.quotes import CheckPublic, TypedDataPublic
from relayer.intents.bodies import AddBody, LadderBody, OpenBody, ReduceBody

_EXAMPLE_EXITS: list[JsonValue] = [{"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10000}]
_SIG = "0x" + "ab" * 65


class OpenIntentRequest(OpenBody):
    """An OpenPosition as signed, in human units, with the symbol instead of the token and vault."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "NVDA",
                    "usdcAmount": "100",
                    "minTokenOut": "0.5",
                    "maxSlippageBps": 100,
                    "exits": _EXAMPLE_EXITS,
                    "deadline": 1735689600,
                    "nonce": 0,
                    "signature": _SIG,
                }
            ]
        }
    )


class AddIntentRequest(AddBody):
    """An AddToPosition as signed, in human units."""


class ReduceIntentRequest(ReduceBody):
    """A ReducePosition as signed, in human units; a tokenAmount at or above the size closes."""


class LadderIntentRequest(LadderBody):
    """An UpdateExitLadder as signed."""


class VerifyOpenRequest(OpenBody):
    primaryType: Literal["OpenPosition"]


class VerifyAddRequest(AddBody):
    primaryType: Literal["AddToPosition"]


class VerifyReduceRequest(ReduceBody):
    primaryType: Literal["ReducePosition"]


class VerifyLadderRequest(LadderBody):
    primaryType: Literal["UpdateExitLadder"]


VerifyRequest = Annotated[
    VerifyOpenRequest | VerifyAddRequest | VerifyReduceRequest | VerifyLadderRequest,
    Field(discriminator="primaryType"),
]


class FillPublic(Public):
    usdc: str = Field(description="USDC paid (buys) or received (reduces).")
    tokens: str = Field(description="Tokens bought or sold.")
    price: str = Field(description="USDC per token of the fill.")


class BatchPublic(Public):
    """The router transaction that carried the intent with others (SPEC §5.1)."""

    transactionHash: str
    index: int = Field(description="The intent's position in the batch, from 0.")
    size: int = Field(description="How many intents the batch carried.")


class IntentPublic(Public):
    """An intent record. `status`: received → submitted → confirmed, or rejected / failed with a
    `reason`; an open or add above its approval threshold starts pending_approval (with an
    `approvalId`) and goes on to received once approved. Submits answer it: 201 confirmed, 202 not
    mined within the wait or pending approval, 200 the record of an intent already submitted
    (idempotency)."""

    intentId: str
    agentId: str
    type: Literal["OpenPosition", "AddToPosition", "ReducePosition", "UpdateExitLadder"]
    nonce: int
    digest: str = Field(description="The EIP-712 digest that was signed.")
    status: str = Field(description="pending_approval, received, submitted, confirmed, rejected or failed.")
    positionId: str | None
    transactionHash: str | None
    blockNumber: int | None
    createdAt: str = Field(description="ISO 8601 with its UTC offset.")
    updatedAt: str = Field(description="ISO 8601 with its UTC offset.")
    fill: FillPublic | None = None
    reason: str | None = None
    batch: BatchPublic | None = None
    approvalId: str | None = Field(
        default=None, description="Set when the intent waited (or waits) for a human approval (SPEC §5.5)."
    )


class IntentStatusPublic(Public):
    status: str
    reason: str | None
    at: str


class IntentDetailPublic(IntentPublic):
    history: list[IntentStatusPublic]


class IntentsPublic(Public):
    intents: list[IntentPublic] = Field(description="Newest first.")


class VerifyPublic(Public):
    primaryType: Literal["OpenPosition", "AddToPosition", "ReducePosition", "UpdateExitLadder"]
    typedData: TypedDataPublic
    digest: str
    domainSeparator: str
    structHash: str
    recoveredSigner: str | None
    registeredSigner: str
    expectedNonce: int
    checks: list[CheckPublic]
    ok: bool

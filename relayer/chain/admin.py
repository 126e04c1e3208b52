"""Operator transactions: deploying the contracts and running vaults, agents, tracks, tokens, prices.

Synchronous and one key at a time: these are operator commands, not the relayer's hot path (that is
`relayer.chain.sender`). Every call is estimated first, so a call that would revert fails here with
the contract's decoded error and costs no gas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi.abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxParams, TxReceipt

from relayer.chain import artifacts
from relayer.chain.reverts import RevertDecoder
from relayer.domain.track import Track

CONTRACT_NAMES = (
    "TradeRouter",
    "AgentRegistry",
    "TokenRegistry",
    "PriceOracle",
    "OraclePriceVenue",
    "Vault",
    "EquityToken",
    "MockUSDC",
)
PRICE_DECIMALS = 8
USDC_DECIMALS = 6


class OperatorError(RuntimeError):
    """An operator transaction failed; the message is one line an operator can act on."""


@dataclass(frozen=True)
class CoreAddresses:
    trade_router: ChecksumAddress
    agent_registry: ChecksumAddress
    token_registry: ChecksumAddress
    price_oracle: ChecksumAddress
    usdc: ChecksumAddress
    venue: ChecksumAddress


def revert_decoder() -> RevertDecoder:
    return RevertDecoder(artifacts.abi(name) for name in CONTRACT_NAMES)


class Admin:
    """Signs with the operator key; tracks its own nonce so a batch of calls needs no round trips."""

    def __init__(self, w3: Web3, operator_key: str, core: CoreAddresses | None = None) -> None:
        self.w3 = w3
        self.account: LocalAccount = Account.from_key(operator_key)
        self.chain_id = w3.eth.chain_id
        self._nonce: int = w3.eth.get_transaction_count(self.account.address, "pending")
        self._decoder = revert_decoder()
        self.core = core

    # ------------------------------------------------------------------ plumbing

    def resync_nonce(self) -> None:
        """After the chain moved under us (a reverted snapshot, another sender)."""
        self._nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")

    def contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifacts.abi(name))

    def _core(self) -> CoreAddresses:
        if self.core is None:
            raise OperatorError("no deployment: run `alphagrid deploy` (or `alphagrid up`) first")
        return self.core

    @property
    def router(self) -> Contract:
        return self.contract("TradeRouter", self._core().trade_router)

    @property
    def agents(self) -> Contract:
        return self.contract("AgentRegistry", self._core().agent_registry)

    @property
    def tokens(self) -> Contract:
        return self.contract("TokenRegistry", self._core().token_registry)

    @property
    def oracle(self) -> Contract:
        return self.contract("PriceOracle", self._core().price_oracle)

    @property
    def usdc(self) -> Contract:
        return self.contract("MockUSDC", self._core().usdc)

    @property
    def venue(self) -> Contract:
        return self.contract("OraclePriceVenue", self._core().venue)

    def _explain(self, exc: ContractLogicError) -> str:
        data = exc.data if isinstance(exc.data, str) else None
        if data and data.startswith("0x") and len(data) >= 10:
            decoded = self._decoder.decode(bytes.fromhex(data[2:]))
            args = ", ".join(f"{k}={v}" for k, v in decoded.to_json()["args"].items())
            return f"{decoded.name}({args})"
        return str(exc.message or exc)

    def _send_tx(self, fields: dict[str, Any], what: str) -> TxReceipt:
        tx: dict[str, Any] = {
            **fields,
            "from": self.account.address,
            "nonce": self._nonce,
            "chainId": self.chain_id,
        }
        try:
            if "gas" not in tx:
                tx["gas"] = int(self.w3.eth.estimate_gas(cast(TxParams, tx)) * 1.2) + 10_000
        except (ContractCustomError, ContractLogicError) as exc:
            raise OperatorError(f"{what} would revert: {self._explain(exc)}") from exc
        if "maxFeePerGas" not in tx and "gasPrice" not in tx:
            base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0)
            tip = self.w3.to_wei(1, "gwei")
            tx["maxPriorityFeePerGas"] = tip
            tx["maxFeePerGas"] = 2 * int(base) + tip
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self._nonce += 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
        if receipt["status"] != 1:
            raise OperatorError(f"{what} reverted in transaction {tx_hash.hex()}")
        return receipt

    def send(self, fn: ContractFunction, what: str) -> TxReceipt:
        try:
            params = {"from": self.account.address, "nonce": self._nonce, "gas": 0}
            tx = fn.build_transaction(cast(TxParams, params))
        except (ContractCustomError, ContractLogicError) as exc:
            raise OperatorError(f"{what} would revert: {self._explain(exc)}") from exc
        return self._send_tx({"to": tx["to"], "data": tx["data"]}, what)

    def deploy(self, name: str, *args: Any) -> ChecksumAddress:
        ctor: dict[str, Any] = next(
            (e for e in artifacts.abi(name) if e["type"] == "constructor"), {"inputs": []}
        )
        types = [i["type"] for i in ctor["inputs"]]
        data = artifacts.bytecode(name) + encode(types, list(args)).hex()
        receipt = self._send_tx({"data": data}, f"deploying {name}")
        address = receipt["contractAddress"]
        if address is None:
            raise OperatorError(f"deploying {name} produced no contract")
        return Web3.to_checksum_address(address)

    def _event_arg(self, receipt: TxReceipt, contract: Contract, event: str, arg: str) -> Any:
        logs = contract.events[event]().process_receipt(receipt)
        if not logs:
            raise OperatorError(f"expected a {event} event in {receipt['transactionHash'].hex()}")
        return logs[0]["args"][arg]

    # ------------------------------------------------------------------ deployment

    def deploy_core(self, *, max_price_age_s: int, spread_bps: int = 10) -> CoreAddresses:
        op = self.account.address
        usdc = self.deploy("MockUSDC", op)
        oracle = self.deploy("PriceOracle", op)
        venue = self.deploy("OraclePriceVenue", op, oracle, usdc, spread_bps)
        agent_registry = self.deploy("AgentRegistry", op)
        token_registry = self.deploy("TokenRegistry", op)
        router = self.deploy(
            "TradeRouter", op, agent_registry, token_registry, oracle, venue, usdc, max_price_age_s
        )
        self.core = CoreAddresses(router, agent_registry, token_registry, oracle, usdc, venue)
        trader_role = self.venue.functions.TRADER_ROLE().call()
        self.send(self.venue.functions.grantRole(trader_role, router), "granting the router the venue")
        return self.core

    # ------------------------------------------------------------------ tokens and prices

    def add_token(self, symbol: str, name: str, price: int) -> ChecksumAddress:
        """Deploys an equity token issued by the venue, registers it and sets its first price."""
        token = self.deploy("EquityToken", name, symbol, self._core().venue)
        self.send(self.tokens.functions.registerToken(symbol, token), f"registering {symbol}")
        self.set_prices([token], [price])
        return token

    def token_address(self, symbol: str) -> ChecksumAddress:
        address = self.tokens.functions.tokenOf(symbol).call()
        if int(address, 16) == 0:
            raise OperatorError(f"unknown symbol {symbol}")
        return Web3.to_checksum_address(address)

    def set_prices(self, tokens: Sequence[str], prices: Sequence[int]) -> TxReceipt:
        fn = self.oracle.functions.setPrices(list(tokens), list(prices))
        return self.send(fn, "setting prices")

    # ------------------------------------------------------------------ vaults

    def create_vault(self) -> tuple[int, ChecksumAddress]:
        vault = self.deploy("Vault", self.account.address, self._core().usdc)
        v = self.contract("Vault", vault)
        role = v.functions.ROUTER_ROLE().call()
        self.send(v.functions.grantRole(role, self._core().trade_router), "granting the router the vault")
        receipt = self.send(self.agents.functions.registerVault(vault), "registering the vault")
        vault_id = int(self._event_arg(receipt, self.agents, "VaultRegistered", "vaultId"))
        return vault_id, vault

    def vault_address(self, vault_id: int) -> ChecksumAddress:
        address = self.agents.functions.vaultAddress(vault_id).call()
        if int(address, 16) == 0:
            raise OperatorError(f"unknown vault {vault_id}")
        return Web3.to_checksum_address(address)

    def mint_usdc(self, to: str, amount_base: int) -> TxReceipt:
        return self.send(self.usdc.functions.mint(Web3.to_checksum_address(to), amount_base), "minting USDC")

    def allow_token(self, vault_id: int, token: str, allowed: bool = True) -> TxReceipt:
        fn = self.tokens.functions.setAllowed(vault_id, Web3.to_checksum_address(token), allowed)
        return self.send(fn, "setting the allowlist")

    # ------------------------------------------------------------------ tracks and agents

    def set_track(self, name: str, track: Track) -> int:
        receipt = self.send(self.agents.functions.setTrack(name, track.as_tuple()), f"setting track {name}")
        return int(self._event_arg(receipt, self.agents, "TrackSet", "trackId"))

    def track_id(self, name: str) -> int:
        track_id = int(self.agents.functions.trackIdOf(name).call())
        if track_id == 0:
            raise OperatorError(f"unknown track {name}")
        return track_id

    def register_agent(self, signer: str, vault_id: int, track: str, allocation_base: int) -> int:
        fn = self.agents.functions.registerAgent(
            Web3.to_checksum_address(signer), vault_id, self.track_id(track), allocation_base
        )
        receipt = self.send(fn, "registering the agent")
        return int(self._event_arg(receipt, self.agents, "AgentRegistered", "agentId"))

    def set_agent_track(self, agent_id: int, track: str) -> TxReceipt:
        return self.send(
            self.agents.functions.setAgentTrack(agent_id, self.track_id(track)), "setting the track"
        )

    def set_allocation(self, agent_id: int, allocation_base: int) -> TxReceipt:
        return self.send(
            self.agents.functions.setAllocation(agent_id, allocation_base), "setting the allocation"
        )

    def set_active(self, agent_id: int, active: bool) -> TxReceipt:
        return self.send(self.agents.functions.setActive(agent_id, active), "setting the agent's status")

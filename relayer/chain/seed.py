"""The local development chain's contents (SPEC §4.5): contracts, tokens, prices, tracks, a funded
vault and demo agents — and the manifest that says where they are."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from eth_account import Account
from eth_typing import ChecksumAddress

from relayer.chain.admin import PRICE_DECIMALS, USDC_DECIMALS, Admin, CoreAddresses
from relayer.devkeys import DEMO_AGENT_KEYS
from relayer.domain.track import DEFAULT_TRACKS
from relayer.manifest import Contracts, Demo, DemoAgent, Manifest, VaultEntry

SEED_TOKENS: Final[dict[str, tuple[str, Decimal]]] = {
    "NVDA": ("NVIDIA Corp. (tokenized)", Decimal("182.35")),
    "AAPL": ("Apple Inc. (tokenized)", Decimal("231.50")),
    "TSLA": ("Tesla Inc. (tokenized)", Decimal("248.10")),
    "MSFT": ("Microsoft Corp. (tokenized)", Decimal("415.20")),
    "SPY": ("SPDR S&P 500 ETF (tokenized)", Decimal("598.40")),
}


@dataclass(frozen=True)
class SeedPlan:
    vault_usdc: int = 1_000_000
    venue_usdc: int = 10_000_000
    agents: tuple[tuple[str, int], ...] = (("funded", 100_000), ("evaluation", 25_000))
    tokens: dict[str, tuple[str, Decimal]] = field(default_factory=lambda: dict(SEED_TOKENS))
    spread_bps: int = 10
    max_price_age_s: int = 3600


def price_base(price: Decimal) -> int:
    scaled = price.scaleb(PRICE_DECIMALS)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {price} has more than {PRICE_DECIMALS} decimals")
    return int(scaled)


@dataclass(frozen=True)
class Market:
    """What every deployment has: the core contracts, the tokens with their first prices, the tracks."""

    start_block: int
    core: CoreAddresses
    tokens: dict[str, ChecksumAddress]


def deploy_market(
    admin: Admin,
    *,
    max_price_age_s: int,
    spread_bps: int,
    tokens: dict[str, tuple[str, Decimal]] | None = None,
    venue_usdc_base: int = 0,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Market:
    start_block = admin.w3.eth.block_number
    progress("deploying contracts")
    core = admin.deploy_core(max_price_age_s=max_price_age_s, spread_bps=spread_bps)
    listed = SEED_TOKENS if tokens is None else tokens
    progress(f"creating tokens {', '.join(listed)} with their prices")
    addresses = {
        symbol: admin.add_token(symbol, name, price_base(price)) for symbol, (name, price) in listed.items()
    }
    progress(f"setting tracks {', '.join(DEFAULT_TRACKS)}")
    for name, limits in DEFAULT_TRACKS.items():
        admin.set_track(name, limits)
    if venue_usdc_base:
        progress("minting the venue's USDC liquidity")
        admin.mint_usdc(core.venue, venue_usdc_base)
    return Market(start_block, core, addresses)


def manifest_for(
    admin: Admin,
    market: Market,
    *,
    rpc_url: str,
    api_url: str,
    vaults: list[VaultEntry] | None = None,
    demo: Demo | None = None,
) -> Manifest:
    core = market.core
    return Manifest(
        chainId=admin.chain_id,
        rpcUrl=rpc_url,
        apiUrl=api_url,
        startBlock=market.start_block,
        contracts=Contracts(
            TradeRouter=core.trade_router,
            AgentRegistry=core.agent_registry,
            TokenRegistry=core.token_registry,
            PriceOracle=core.price_oracle,
            USDC=core.usdc,
            Venue=core.venue,
        ),
        tokens=dict(market.tokens),
        vaults=vaults or [],
        demo=demo,
    )


def seed_local(
    admin: Admin,
    *,
    rpc_url: str,
    api_url: str,
    plan: SeedPlan | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Manifest:
    """A market plus a funded vault with every token allowed and the demo agents (SPEC §4.5)."""
    plan = plan or SeedPlan()
    market = deploy_market(
        admin,
        max_price_age_s=plan.max_price_age_s,
        spread_bps=plan.spread_bps,
        tokens=plan.tokens,
        venue_usdc_base=plan.venue_usdc * 10**USDC_DECIMALS,
        progress=progress,
    )
    progress("creating and funding the vault")
    vault_id, vault = admin.create_vault()
    admin.mint_usdc(vault, plan.vault_usdc * 10**USDC_DECIMALS)
    for token in market.tokens.values():
        admin.allow_token(vault_id, token)

    progress("registering demo agents")
    demo_agents = []
    for key, (track, allocation) in zip(DEMO_AGENT_KEYS, plan.agents, strict=False):
        signer = Account.from_key(key).address
        agent_id = admin.register_agent(signer, vault_id, track, allocation * 10**USDC_DECIMALS)
        demo_agents.append(DemoAgent(agentId=agent_id, signerKey=key, track=track))

    return manifest_for(
        admin,
        market,
        rpc_url=rpc_url,
        api_url=api_url,
        vaults=[VaultEntry(vaultId=vault_id, address=vault)],
        demo=Demo(operatorKey="0x" + bytes(admin.account.key).hex(), agents=demo_agents),
    )

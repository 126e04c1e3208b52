"""Everything that talks to the chain: artifacts, a local Anvil, operator transactions, the sender."""

"""AlphaGrid relayer: quotes, verifies and relays EIP-712 trading intents to the TradeRouter."""

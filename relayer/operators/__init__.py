"""Operators (SPEC §5.5): API keys with scopes, webhook subscriptions, the outbox written with each
stream event, and the worker that delivers it."""

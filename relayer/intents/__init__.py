"""Intents: from a request body to a typed message, the checks of SPEC §2.4, and the submit pipeline."""

"""Persistence: SQLAlchemy models and the engine/session factory. The caller owns the transaction."""

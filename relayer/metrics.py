"""Prometheus metrics, in a registry owned by the service (never the process-global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.http_requests = Counter(
            "alphagrid_http_requests_total",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=registry,
        )
        self.http_latency = Histogram(
            "alphagrid_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=registry,
        )
        self.intents = Counter(
            "alphagrid_intents_total",
            "Submitted intents by type and answer code",
            ["type", "code"],
            registry=registry,
        )
        self.indexed_block = Gauge(
            "alphagrid_indexed_block", "Last block the indexer processed", registry=registry
        )
        self.exits_fired = Counter(
            "alphagrid_exits_fired_total", "Exit-ladder rules fired", registry=registry
        )
        self.exits_failed = Counter(
            "alphagrid_exits_failed_total", "Exit attempts that failed", registry=registry
        )
        self.exit_latency = Histogram(
            "alphagrid_exit_latency_seconds",
            "Price update block to exit confirmation",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=registry,
        )
        self.trigger_index_size = Gauge(
            "alphagrid_trigger_index_rules", "Armed rules in the keeper's trigger index", registry=registry
        )
        self.intents_failed_after_simulation = Counter(
            "alphagrid_intents_failed_after_simulation",
            "Intents that passed the simulation before sending and then failed on chain, by the "
            "router's reason (the chain moved between the simulation and the inclusion)",
            ["reason"],
            registry=registry,
        )
        self.exits_failed_after_simulation = Counter(
            "alphagrid_exits_failed_after_simulation",
            "Keeper exits that passed the simulation before sending and then failed or were skipped on "
            "chain, by the router's reason",
            ["reason"],
            registry=registry,
        )

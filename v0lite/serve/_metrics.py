"""Prometheus metrics of one app, in its own ``CollectorRegistry`` (two apps in a process never clash)."""

from __future__ import annotations

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The service's counters and histograms (names start with ``v0lite_``)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "v0lite_requests", "HTTP requests by endpoint and status code", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "v0lite_request_seconds", "Request latency by endpoint", ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.routes = Counter("v0lite_routes", "Prompts routed, by chosen model", ["model"], registry=r)
        self.feedback_rows = Counter("v0lite_feedback_rows", "Feedback rows durably stored by this process", registry=r)
        self.applied_rows = Gauge(
            "v0lite_applied_rows", "Rows of the outcome store applied to the value model", registry=r
        )
        self.upstream_errors = Counter(
            "v0lite_upstream_errors", "Failed upstream calls, by model and reason", ["model", "reason"], registry=r
        )
        self.cache_hits = Counter(
            "v0lite_embedding_cache_hits", "Routed or predicted prompts whose embedding was already known", registry=r
        )
        self.cache_misses = Counter(
            "v0lite_embedding_cache_misses", "Routed or predicted prompts that had to be embedded", registry=r
        )
        self.batch_size = Histogram(
            "v0lite_batch_items",
            "Prompts per micro-batch (embed + predict call)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.rejected = Counter("v0lite_rejected", "Requests answered 429 (queue full)", registry=r)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

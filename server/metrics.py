"""Prometheus metrics: request counts and latencies by RPC and status, searched queries by plan."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

_LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """One registry per server, so several servers in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vecstore_requests", "RPCs answered, by method and status code", ["rpc", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "vecstore_request_seconds",
            "RPC latency in seconds, by method",
            ["rpc"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.queries = Counter(
            "vecstore_search_queries",
            "query vectors searched, by method and plan",
            ["rpc", "plan"],
            registry=self.registry,
        )

    def observe(self, rpc: str, code: str, seconds: float, plan: str | None, queries: int) -> None:
        self.requests.labels(rpc, code).inc()
        self.latency.labels(rpc).observe(seconds)
        if plan is not None:
            self.queries.labels(rpc, plan).inc(queries)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics over HTTP on a loopback port (separate from the gRPC port)."""
        start_http_server(port, addr=host, registry=self.registry)

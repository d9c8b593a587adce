"""Prometheus metrics of the web processes (``prometheus_client``).

gunicorn runs several worker processes; each counts what it served. With
PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it, one folder per
instance, emptied when gunicorn starts), prometheus_client's multiprocess mode
keeps every process's counts in files there and a scrape answered by any worker
adds up all of them (a dead worker's counts stay: counters never go back).
Without it (``flask run``, the tests' client), the counts are this process's.

Only counts made by the requests themselves live here. What the database
knows (outbox depth, sealer lag, sources' health) is read when scraped
(``app.services.health``), never kept in memory. Label values are bounded:
the URL rule, never the raw path; a form's code, never what someone typed.
Platform plumbing: it imports nothing of the app.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "(unmatched)"

REQUESTS = Counter(
    "platform_http_requests",
    "HTTP requests answered, by URL rule (not the raw path), method and status.",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "platform_http_request_duration_seconds",
    "Time from the request's arrival in the app to its response, by URL rule and method.",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
QUERIES = Counter(
    "platform_queries",
    "Queries run or refused, by form code and outcome (the query log's outcome).",
    ["form", "outcome"],
)
SIGNIN_FAILURES = Counter(
    "platform_signin_failures",
    "Failed sign-ins (password, certificate card, FTPS), counted as the failure counters count them.",
)
SIGNIN_LOCKS = Counter(
    "platform_signin_locks",
    "Sign-in locks started by failures, by what was locked (account or address).",
    ["scope"],
)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def observe_request(endpoint: str | None, method: str, status: int, seconds: float) -> None:
    endpoint = endpoint or UNMATCHED
    REQUESTS.labels(endpoint, method, str(status)).inc()
    LATENCY.labels(endpoint, method).observe(seconds)


def count_query(form: str | None, outcome: str) -> None:
    QUERIES.labels(form or UNMATCHED, outcome).inc()


def count_signin_failure(locks: tuple[str, ...] = ()) -> None:
    SIGNIN_FAILURES.inc()
    for scope in locks:
        SIGNIN_LOCKS.labels(scope).inc()


class _ThisProcess:
    """The default registry's metrics, as one collector of a scrape's registry."""

    def collect(self):
        yield from REGISTRY.collect()


def exposition(*collectors) -> tuple[bytes, str]:
    """The text a scrape gets: every process's counts (multiprocess mode) or this
    process's, then what ``collectors`` read now; and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST

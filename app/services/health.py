"""What /health/ready and /metrics report: the platform's dependencies and its
backlogs, read when asked.

Cheap on purpose: one query on the platform database (the sources' recorded health), a PING to each
Redis a setting names, a TCP connection to the SMTP server (reused for
HEALTH_SMTP_CACHE_SECONDS), and a few COUNT/MIN queries on indexed columns.
A data source is never connected to: its health is what the platform last
recorded on it (``test_connection``: when and whether it answered). Nothing is
written, nothing audited, and no answer holds a URL, a password or personal
data: a failing check says only that it failed (the log says how, by the
exception's type).
"""

from __future__ import annotations

import datetime
import logging
import socket
import threading
import time
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app.models.audit import AuditEvent
from app.models.outbox import FAILED, QUEUED, SENDING, OutboxMessage
from app.models.sources import DataSource
from app.services.reports import replica

log = logging.getLogger(__name__)

OK, DOWN, NOT_CONFIGURED = "ok", "down", "not configured"
# Settings that may name a Redis (redis:// or rediss://): each one named is checked.
REDIS_SETTINGS = ("RATELIMIT_STORAGE_URI", "LOGIN_THROTTLE_STORAGE_URI", "REDIS_URL")
KNOWN_CHECKS = ("database", "redis", "smtp")


@dataclass
class Readiness:
    database: str
    redis: dict[str, str]  # setting name -> ok/down; empty when none names a Redis
    smtp: str
    sources: dict[str, str] = field(default_factory=dict)  # code -> ok/failing/unchecked/disabled
    required: tuple[str, ...] = ("database", "redis")
    # The reports' replica (DATABASE_REPLICA_URL): ok, lagging, down or not configured. Never makes the
    # host unready: the reports then read the primary (app.services.reports.replica).
    replica: str = NOT_CONFIGURED
    replica_lag_seconds: float | None = None

    def failed(self) -> list[str]:
        failed = []
        if "database" in self.required and self.database != OK:
            failed.append("database")
        if "redis" in self.required and any(state != OK for state in self.redis.values()):
            failed.append("redis")
        if "smtp" in self.required and self.smtp == DOWN:
            failed.append("smtp")
        return failed

    @property
    def ready(self) -> bool:
        return not self.failed()

    def as_dict(self) -> dict:
        return {
            "status": "ready" if self.ready else "unready",
            "failed": self.failed(),
            "checks": {
                "database": self.database,
                "redis": self.redis or NOT_CONFIGURED,
                "smtp": self.smtp,
                "replica": self.replica,
            },
            **(
                {"replica_lag_seconds": round(self.replica_lag_seconds, 1)}
                if self.replica_lag_seconds is not None
                else {}
            ),
            "sources": self.sources,
        }


def required_checks(config) -> tuple[str, ...]:
    """HEALTH_REQUIRED, checked: an unknown name is a configuration error."""
    names = tuple(name.strip().lower() for name in config.get("HEALTH_REQUIRED") or ())
    unknown = [name for name in names if name not in KNOWN_CHECKS]
    if unknown:
        raise ValueError(f"HEALTH_REQUIRED: {', '.join(unknown)} is not one of {', '.join(KNOWN_CHECKS)}")
    return names


# --- the checks -------------------------------------------------------------


def redis_urls(config) -> dict[str, str]:
    """Setting name -> URL, for each setting that names a Redis."""
    named = {}
    for name in REDIS_SETTINGS:
        value = config.get(name) or ""
        if isinstance(value, str) and value.startswith(("redis://", "rediss://")):
            named[name] = value
    return named


_redis_clients: dict[tuple[str, float], object] = {}
_redis_lock = threading.Lock()


def _redis_client(url: str, timeout: float):
    import redis

    key = (url, timeout)
    with _redis_lock:
        client = _redis_clients.get(key)
        if client is None:
            client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
            _redis_clients[key] = client
    return client


def check_redis(url: str, timeout: float) -> bool:
    try:
        return bool(_redis_client(url, timeout).ping())
    except Exception as exc:
        log.warning("health: Redis unavailable (%s)", type(exc).__name__)
        return False


_smtp_seen: dict[tuple[str, int], tuple[float, bool]] = {}


def check_smtp(host: str, port: int, timeout: float, cache_seconds: float = 0.0) -> bool:
    """Whether the SMTP server takes a TCP connection (no SMTP conversation, no
    sign-in: reachability only); the answer is reused for ``cache_seconds``."""
    key = (host, int(port))
    now = time.monotonic()
    seen = _smtp_seen.get(key)
    if seen is not None and now - seen[0] < cache_seconds:
        return seen[1]
    try:
        with socket.create_connection(key, timeout=timeout):
            ok = True
    except OSError as exc:
        log.warning("health: SMTP server unreachable (%s)", type(exc).__name__)
        ok = False
    _smtp_seen[key] = (time.monotonic(), ok)
    return ok


def source_states(conn) -> dict[str, str]:
    """Each data source's last recorded health, by code (never a connection to it)."""
    rows = conn.execute(select(DataSource.code, DataSource.enabled, DataSource.last_ok).order_by(DataSource.code)).all()
    return {code: _source_state(enabled, last_ok) for code, enabled, last_ok in rows}


def _source_state(enabled, last_ok) -> str:
    if not enabled:
        return "disabled"
    if last_ok is None:
        return "unchecked"
    return "ok" if last_ok else "failing"


def readiness(engine, config) -> Readiness:
    timeout = float(config.get("HEALTH_TIMEOUT", 2.0))
    sources: dict[str, str] = {}
    try:  # one connection, one query: reading the sources' health is the database's check
        with engine.connect() as conn:
            sources = source_states(conn)
        database = True
    except Exception as exc:
        log.warning("health: platform database unavailable (%s)", type(exc).__name__)
        database = False
    urls = redis_urls(config)
    verdicts: dict[str, bool] = {}
    for url in set(urls.values()):
        verdicts[url] = check_redis(url, timeout)
    smtp = check_smtp(
        config.get("MAIL_SERVER") or "127.0.0.1",
        int(config.get("MAIL_PORT") or 25),
        timeout,
        float(config.get("HEALTH_SMTP_CACHE_SECONDS", 0.0)),
    )
    replica_state, replica_lag = replica.check(engine) if database else ("unchecked", None)
    return Readiness(
        replica=replica_state,
        replica_lag_seconds=replica_lag,
        database=OK if database else DOWN,
        redis={name: OK if verdicts[url] else DOWN for name, url in urls.items()},
        smtp=OK if smtp else DOWN,
        sources=sources,
        required=required_checks(config),
    )


# --- metrics read at scrape time ---------------------------------------------


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _age(now: datetime.datetime, then) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0


class PlatformCollector:
    """Gauges read from the platform database (and the dependency checks) when
    /metrics is scraped: a collector for ``app.lib.metrics.exposition``."""

    def __init__(self, engine, config):
        self.engine = engine
        self.config = config

    def collect(self):
        ready = readiness(self.engine, self.config)
        up = GaugeMetricFamily(
            "platform_dependency_up", "Whether a dependency answered (1) or not (0).", labels=["dependency"]
        )
        up.add_metric(["database"], 1.0 if ready.database == OK else 0.0)
        up.add_metric(["smtp"], 1.0 if ready.smtp == OK else 0.0)
        for name, state in sorted(ready.redis.items()):
            up.add_metric([f"redis:{name}"], 1.0 if state == OK else 0.0)
        yield up
        yield _gauge("platform_ready", "Whether /health/ready answers 200 (1) or 503 (0).", 1.0 if ready.ready else 0.0)
        if ready.database != OK:
            return
        try:
            yield from self._from_database()
        except Exception as exc:
            log.warning("metrics: platform database unavailable (%s)", type(exc).__name__)

    def _from_database(self):
        now = _utcnow()
        with self.engine.connect() as conn:
            outbox = dict(
                conn.execute(
                    select(OutboxMessage.status, func.count())
                    .where(OutboxMessage.status.in_((QUEUED, SENDING, FAILED)))
                    .group_by(OutboxMessage.status)
                ).all()
            )
            oldest_mail = conn.execute(
                select(func.min(OutboxMessage.created_at)).where(OutboxMessage.status.in_((QUEUED, SENDING)))
            ).scalar()
            unsealed, oldest_event = conn.execute(
                select(func.count(), func.min(AuditEvent.at)).where(AuditEvent.seq.is_(None))
            ).one()
            sources = conn.execute(
                select(
                    DataSource.code,
                    DataSource.enabled,
                    DataSource.last_ok,
                    DataSource.last_checked_at,
                    DataSource.last_latency_ms,
                ).order_by(DataSource.code)
            ).all()
        depth = GaugeMetricFamily(
            "platform_outbox_messages", "Mail in the outbox not sent, by status.", labels=["status"]
        )
        for status in (QUEUED, SENDING, FAILED):
            depth.add_metric([status], float(outbox.get(status, 0)))
        yield depth
        yield _gauge(
            "platform_outbox_oldest_waiting_seconds",
            "Age of the oldest mail queued or being sent (0: none waits).",
            _age(now, oldest_mail),
        )
        yield _gauge(
            "platform_audit_unsealed_events", "Audit events written but not yet linked by the sealer.", unsealed
        )
        yield _gauge(
            "platform_audit_oldest_unsealed_seconds",
            "Age of the oldest audit event the sealer has not linked (0: none waits).",
            _age(now, oldest_event),
        )
        state = GaugeMetricFamily(
            "platform_source_up",
            "A data source's last recorded test: 1 answered, 0 failed (unchecked and disabled sources are left out).",
            labels=["source"],
        )
        checked = GaugeMetricFamily(
            "platform_source_last_check_age_seconds", "Seconds since a data source was last tested.", labels=["source"]
        )
        latency = GaugeMetricFamily(
            "platform_source_latency_seconds",
            "A data source's answer time at its last successful test.",
            labels=["source"],
        )
        for code, enabled, last_ok, last_checked_at, last_latency_ms in sources:
            if not enabled or last_ok is None:
                continue
            state.add_metric([code], 1.0 if last_ok else 0.0)
            if last_checked_at is not None:
                checked.add_metric([code], _age(now, last_checked_at))
            if last_ok and last_latency_ms is not None:
                latency.add_metric([code], last_latency_ms / 1000.0)
        yield state
        yield checked
        yield latency


def _gauge(name: str, documentation: str, value) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value or 0))

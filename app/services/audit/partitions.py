"""Monthly partitions of the query log and the audit trail on PostgreSQL.

Migration 0023 turns ``query_log``, ``query_subject`` and ``audit_event`` into
tables partitioned by month on their time (``at``), one partition a month
(``query_log_p202012``) and a default partition for what falls outside them;
``ensure`` (the retention worker, each round) creates the months ahead. Once
a month is archived (``archive``), removing it drops its partitions instead of
deleting its rows one by one: the time it takes does not grow with the rows.

What partitioning costs, and why it is accepted:
- A primary key or unique index of a partitioned table must hold the partition
  column: ``(id, at)``, ``(seq, at)``, ``(verification_code, at)``,
  ``(entry_mac, at)``. Ids and seqs still come from one sequence each, and an
  event's entry seal covers its time, so a replayed copy (the same ``at``) is
  still refused by the index; the chain walk refuses a repeated seq.
- A foreign key must reference such a unique key: ``query_subject`` and
  ``access_flag`` no longer have a database foreign key to ``query_log`` (both
  are written with their query in one statement or transaction, and removed with
  it by ``archive.remove_month``).
- A row whose month has no partition yet goes to the default partition; a month
  created later first moves such rows out of it (``ensure``).
SQLite and MySQL keep plain tables (the removal deletes the rows).
``restore`` undoes ``convert`` (the migration's downgrade).
"""

from __future__ import annotations

import datetime
import re

from sqlalchemy import text

TABLES = ("query_log", "query_subject", "audit_event")
MONTHS_AHEAD = 3
_NAME = re.compile(r"^[a-z_]+$")


def _ident(name: str) -> str:
    if not _NAME.match(name.split("_p")[0]) or not re.match(r"^[a-z_0-9]+$", name):
        raise ValueError(f"not a table name: {name!r}")
    return name


def partition_name(table: str, month: str) -> str:
    return _ident(f"{table}_p{month.replace('-', '')}")


def _month_start(month: str) -> datetime.datetime:
    return datetime.datetime(int(month[:4]), int(month[5:]), 1)


def _next(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def _month_of(moment: datetime.datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def is_partitioned(conn, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(
        conn.scalar(
            text("SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid WHERE c.relname = :t"),
            {"t": table},
        )
    )


def has_partition(conn, table: str, month: str) -> bool:
    return bool(conn.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": partition_name(table, month)}))


def create_month(conn, table: str, month: str) -> bool:
    """Create ``table``'s partition of ``month`` (moving rows of that month out of the
    default partition first); False when it exists."""
    if has_partition(conn, table, month):
        return False
    name, start, end = partition_name(table, month), _month_start(month), _month_start(_next(month))
    default = _ident(f"{table}_pdefault")
    params = {"start": start, "end": end}
    stray = conn.scalar(text(f"SELECT count(*) FROM {default} WHERE at >= :start AND at < :end"), params)
    if stray:
        # The month's rows wait in the default partition: take them out, then attach the month.
        conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
        conn.execute(text(f"WITH moved AS (DELETE FROM {default} WHERE at >= :start AND at < :end RETURNING *)"
                          f" INSERT INTO {name} SELECT * FROM moved"), params)  # fmt: skip
        conn.execute(
            text(
                f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{start:%Y-%m-%d}') TO ('{end:%Y-%m-%d}')"
            )
        )
    else:
        conn.execute(
            text(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ('{start:%Y-%m-%d}') TO ('{end:%Y-%m-%d}')")
        )
    return True


def ensure(conn, now: datetime.datetime | None = None, ahead: int = MONTHS_AHEAD) -> list[str]:
    """Create this month's partitions and ``ahead`` more of each partitioned table; returns those made."""
    month = _month_of(now or datetime.datetime.utcnow())
    made = []
    for _ in range(ahead + 1):
        for table in TABLES:
            if is_partitioned(conn, table) and create_month(conn, table, month):
                made.append(partition_name(table, month))
        month = _next(month)
    return made


def drop_month(conn, table: str, month: str) -> int | None:
    """Drop ``table``'s partition of ``month`` and return how many rows it held;
    None when the table is not partitioned or has no such partition (delete the rows instead)."""
    if not is_partitioned(conn, table) or not has_partition(conn, table, month):
        return None
    name = partition_name(table, month)
    count = conn.scalar(text(f"SELECT count(*) FROM {name}"))
    conn.execute(text(f"ALTER TABLE {table} DETACH PARTITION {name}"))
    conn.execute(text(f"DROP TABLE {name}"))
    return int(count)


# --- the migration's conversion ---------------------------------------------


def _add_at(columns: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    return columns if "at" in names else columns + ", at"


def _drop_at(columns: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    return ", ".join(names[:-1]) if len(names) > 1 and names[-1] == "at" else columns


def _catalogue(conn, table: str) -> tuple[list, list, list]:
    """``table``'s indexes (with the kind of key each makes, if any), its primary and unique
    keys, and the sequences its columns own."""
    indexes = conn.execute(
        text(
            "SELECT i.indexname, i.indexdef, c.contype FROM pg_indexes i"
            " LEFT JOIN pg_constraint c ON c.conname = i.indexname AND c.conrelid = to_regclass(i.tablename)"
            " WHERE i.tablename = :t AND i.schemaname = current_schema()"
        ),
        {"t": table},
    ).all()
    keys = conn.execute(
        text(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = to_regclass(:t) AND contype IN ('p', 'u')"
        ),
        {"t": table},
    ).all()
    sequences = conn.execute(
        text(
            "SELECT s.relname, a.attname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid"
            " JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
            " WHERE s.relkind = 'S' AND d.refobjid = to_regclass(:t)"
        ),
        {"t": table},
    ).all()
    return indexes, keys, sequences


def _own(conn, sequences, table: str | None) -> None:
    """The sequences owned by ``table``'s columns again, or (None) by nothing while it is rebuilt."""
    for seq, column in sequences:
        owner = f"{table}.{column}" if table else "NONE"
        conn.execute(text(f'ALTER SEQUENCE "{seq}" OWNED BY {owner}'))


def _remake_keys(conn, table: str, keys, indexes, columns) -> None:
    """Make the ``_catalogue``'s keys and indexes on the rebuilt ``table``, the columns of each
    key and unique index through ``columns``."""
    for name, contype, definition in keys:
        key = re.search(r"\((.*)\)", definition).group(1)
        kind = "PRIMARY KEY" if contype == "p" else "UNIQUE"
        conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {kind} ({columns(key)})'))
    for _name, definition, contype in indexes:
        if contype is not None:
            continue  # made with its key above
        definition = definition.replace(" ON ONLY ", " ON ", 1)  # a partitioned table's index, as a plain one's
        if definition.startswith("CREATE UNIQUE INDEX"):
            definition = re.sub(r"USING (\w+) \(([^)]*)\)", lambda m: f"USING {m.group(1)} ({columns(m.group(2))})",
                                definition, count=1)  # fmt: skip
        conn.execute(text(definition))


def convert(conn, table: str, now: datetime.datetime | None = None) -> None:
    """Turn a plain ``table`` into one partitioned by month on ``at`` (PostgreSQL), keeping
    its rows, defaults, sequence, indexes (unique ones with ``at`` added) and keys."""
    if is_partitioned(conn, table):
        return
    table = _ident(table)
    old = f"{table}_unpartitioned"
    indexes, keys, sequences = _catalogue(conn, table)
    # Foreign keys pointing at the table cannot point at a partitioned one by its id alone.
    for name, referrer in conn.execute(
        text("SELECT conname, conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass(:t)"),
        {"t": table},
    ).all():  # fmt: skip
        conn.execute(text(f'ALTER TABLE {_ident(referrer)} DROP CONSTRAINT "{name}"'))
    _own(conn, sequences, None)
    conn.execute(text(f"ALTER TABLE {table} RENAME TO {old}"))
    conn.execute(text(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS) PARTITION BY RANGE (at)"))
    conn.execute(text(f"CREATE TABLE {table}_pdefault PARTITION OF {table} DEFAULT"))
    now = now or datetime.datetime.utcnow()
    first = conn.scalar(text(f"SELECT min(at) FROM {old}")) or now
    month, last = _month_of(first), _month_of(now)
    while month <= last:
        create_month(conn, table, month)
        month = _next(month)
    ensure_one(conn, table, now)
    conn.execute(text(f"INSERT INTO {table} SELECT * FROM {old}"))
    conn.execute(text(f"DROP TABLE {old}"))
    _own(conn, sequences, table)
    _remake_keys(conn, table, keys, indexes, _add_at)


def restore(conn, table: str) -> None:
    """Turn a ``table`` that ``convert`` partitioned back into a plain one (PostgreSQL), keeping
    its rows, defaults, sequence and indexes, its keys and unique indexes without the ``at``
    that ``convert`` added (none of them held ``at`` before). The foreign keys ``convert`` dropped
    are the caller's to add again."""
    if not is_partitioned(conn, table):
        return
    table = _ident(table)
    plain = f"{table}_unpartitioned"
    indexes, keys, sequences = _catalogue(conn, table)
    _own(conn, sequences, None)
    conn.execute(text(f"CREATE TABLE {plain} (LIKE {table} INCLUDING DEFAULTS)"))
    conn.execute(text(f"INSERT INTO {plain} SELECT * FROM {table}"))
    conn.execute(text(f"DROP TABLE {table}"))  # and its partitions
    conn.execute(text(f"ALTER TABLE {plain} RENAME TO {table}"))
    _own(conn, sequences, table)
    _remake_keys(conn, table, keys, indexes, _drop_at)


def ensure_one(conn, table: str, now: datetime.datetime, ahead: int = MONTHS_AHEAD) -> None:
    month = _month_of(now)
    for _ in range(ahead + 1):
        create_month(conn, table, month)
        month = _next(month)

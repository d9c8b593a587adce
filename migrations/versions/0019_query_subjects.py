"""who read my data through an index: one query_subject row per data subject of each query
that read data, filled from the query log's subjects (the tracker no longer scans the log)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 14:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

READ_OUTCOMES = ("ok", "partial")  # app.services.portal.accesses: a refused query read nothing
BATCH = 5000


def _backfill(bind) -> None:
    """One row per (entry, keyed hash) of the entries that read data. PostgreSQL splits the
    subjects in one statement; elsewhere the rows go over in batches, in id order."""
    if bind.dialect.name == "postgresql":
        op.execute(
            "INSERT INTO query_subject (query_log_id, subject_hash, at) "
            "SELECT DISTINCT q.id, s.hash, q.at FROM query_log q "
            "CROSS JOIN LATERAL unnest(string_to_array(q.subjects, E'\\n')) AS s(hash) "
            "WHERE q.subjects IS NOT NULL AND q.outcome IN ('ok', 'partial') AND s.hash <> ''"
        )
        return
    log = sa.table(
        "query_log", sa.column("id", sa.Integer), sa.column("at", sa.DateTime), sa.column("subjects", sa.Text),
        sa.column("outcome", sa.String),
    )  # fmt: skip
    subject = sa.table(
        "query_subject", sa.column("query_log_id", sa.Integer), sa.column("subject_hash", sa.String),
        sa.column("at", sa.DateTime),
    )  # fmt: skip
    last = 0
    while True:
        rows = bind.execute(
            sa.select(log.c.id, log.c.at, log.c.subjects)
            .where(log.c.id > last, log.c.subjects.is_not(None), log.c.outcome.in_(READ_OUTCOMES))
            .order_by(log.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        values = [
            {"query_log_id": row.id, "subject_hash": h, "at": row.at}
            for row in rows
            for h in sorted({h.strip() for h in row.subjects.split("\n") if h.strip()})
        ]
        if values:
            bind.execute(sa.insert(subject), values)
        last = rows[-1].id


def upgrade():
    op.create_table(
        "query_subject",
        sa.Column("query_log_id", sa.Integer(), sa.ForeignKey("query_log.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("query_log_id", "subject_hash"),
    )
    _backfill(op.get_bind())
    # built after the fill: one sort instead of an index update per row
    op.create_index("ix_query_subject_subject_at", "query_subject", ["subject_hash", "at", "query_log_id"])


def downgrade():
    op.drop_index("ix_query_subject_subject_at", "query_subject")
    op.drop_table("query_subject")

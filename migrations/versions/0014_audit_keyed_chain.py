"""the audit chain is keyed: links become HMAC-SHA256 under AUDIT_CHAIN_KEY,
unsealed events carry an entry seal

The chain written so far (plain SHA-256 links) is verified first, then every
link is recomputed under the key, in order, and the head moved to the new
tip; events waiting for the sealer get their entry seal. A chain that does
not verify stops the upgrade before anything changes (investigate with the
previous version's `flask audit verify`). Downgrade does the reverse.
The formulas are frozen here: later changes to the application's code do
not change what this migration does.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 07:00:00

"""

import datetime
import hashlib
import hmac
import json

import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

GENESIS = "0" * 64
FIELDS = ("seq", "at", "actor_id", "actor", "agency_code", "client_ip", "action", "object_type", "object_id",
          "fields", "outcome", "detail")  # fmt: skip
BATCH = 2000

events = sa.table(
    "audit_event",
    sa.column("id", sa.Integer),
    sa.column("seq", sa.Integer),
    sa.column("at", sa.DateTime),
    sa.column("actor_id", sa.Integer),
    sa.column("actor", sa.String),
    sa.column("agency_code", sa.String),
    sa.column("client_ip", sa.String),
    sa.column("action", sa.String),
    sa.column("object_type", sa.String),
    sa.column("object_id", sa.String),
    sa.column("fields", sa.Text),
    sa.column("outcome", sa.String),
    sa.column("detail", sa.Text),
    sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
    sa.column("entry_mac", sa.String),
)
head = sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq", sa.Integer), sa.column("hash", sa.String))


def _canonical(values) -> str:
    out = []
    for name in FIELDS:
        v = values.get(name)
        if isinstance(v, datetime.datetime):
            v = v.isoformat(timespec="microseconds")
        out.append(v)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _plain(prev, values) -> str:
    return hashlib.sha256((prev + "|" + _canonical(values)).encode()).hexdigest()


def _keyed(key):
    def link(prev, values) -> str:
        return hmac.new(key, (prev + "|" + _canonical(values)).encode(), hashlib.sha256).hexdigest()

    return link


def _entry(key, values) -> str:
    return hmac.new(key, b"entry|" + _canonical({**values, "seq": None}).encode(), hashlib.sha256).hexdigest()


def _key() -> bytes:
    key = current_app.config.get("AUDIT_CHAIN_KEY")
    if not key:
        raise RuntimeError("migration 0014 needs AUDIT_CHAIN_KEY (configuration or instance/audit_chain_key)")
    return key.encode()


def _relink(conn, old_link, new_link, check_only: bool) -> None:
    """Walk the sealed chain checking each link under ``old_link``; unless
    ``check_only``, write each under ``new_link`` and move the head."""
    cols = [events.c[name] for name in ("id", "prev_hash", "hash", *FIELDS)]
    statement = (
        events.update().where(events.c.id == sa.bindparam("row_id")).values(prev_hash=sa.bindparam("p"),
                                                                             hash=sa.bindparam("h"))
    )  # fmt: skip
    old_prev = new_prev = GENESIS
    expected = 1
    while True:  # a page of rows at a time, by seq (no cursor open across the updates)
        page = conn.execute(
            sa.select(*cols).where(events.c.seq >= expected).order_by(events.c.seq).limit(BATCH)
        ).mappings().all()  # fmt: skip
        updates = []
        for row in page:
            values = dict(row)
            if (values["seq"] != expected or values["prev_hash"] != old_prev
                    or old_link(old_prev, values) != values["hash"]):  # fmt: skip
                raise RuntimeError(
                    f"audit chain broken at seq {expected} (id {values['id']}): not re-keyed; investigate with the"
                    " previous version's `flask audit verify` before upgrading"
                )
            old_prev = values["hash"]
            new_hash = new_link(new_prev, values)
            updates.append({"row_id": values["id"], "p": new_prev, "h": new_hash})
            new_prev = new_hash
            expected += 1
        if updates and not check_only:
            conn.execute(statement, updates)
        if len(page) < BATCH:
            break
    tip = conn.execute(sa.select(head.c.seq, head.c.hash).where(head.c.id == 1)).first()
    if check_only:
        if tip is not None and (tip.seq, tip.hash) != (expected - 1, old_prev):
            raise RuntimeError(f"audit chain head (seq {tip.seq}) does not match its last row (seq {expected - 1})")
        return
    if tip is not None:
        conn.execute(head.update().where(head.c.id == 1).values(hash=new_prev))


def upgrade():
    conn = op.get_bind()
    key = _key()
    _relink(conn, _plain, _keyed(key), check_only=True)  # nothing changes unless the old chain holds
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry_mac", sa.String(length=64), nullable=True))
    _relink(conn, _plain, _keyed(key), check_only=False)
    cols = [events.c[name] for name in ("id", *FIELDS)]
    waiting = conn.execute(sa.select(*cols).where(events.c.seq.is_(None))).mappings().all()
    for row in waiting:
        conn.execute(events.update().where(events.c.id == row["id"]).values(entry_mac=_entry(key, dict(row))))


def downgrade():
    conn = op.get_bind()
    _relink(conn, _keyed(_key()), _plain, check_only=False)
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("entry_mac")

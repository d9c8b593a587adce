"""audit events carry a random nonce inside their entry seal, which stays after
linking and is unique; event times keep their microseconds on MySQL/MariaDB

A database writer could copy an event waiting for the sealer, with its entry
seal, and the sealer linked both. From now on each event gets a nonce (128
random bits) sealed with its content, the entry seal is kept once the event is
linked (the link binds the nonce and the seal) and a unique index refuses a
second row with the same seal.

Events waiting for the sealer whose entry seal is good get a nonce and a new
seal; a later row with the seal of an earlier one (a copy already queued) gets
none and is left for the sealer to refuse. Events linked before keep their
links (no nonce, no seal). On MySQL/MariaDB ``audit_event.at`` becomes
DATETIME(6): DATETIME dropped the microseconds the entry seal was made over,
so every event written there failed its seal (those already written stay so).

Downgrade re-links, under the previous formula, the events linked since,
drops their seals, re-seals waiting events without a nonce and drops the
index and the column (MySQL/MariaDB keep DATETIME(6): going back to whole
seconds would break every link made since). The formulas are frozen here.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 10:00:00

"""

import datetime
import hashlib
import hmac
import json
import logging
import secrets

import sqlalchemy as sa
from alembic import op
from flask import current_app
from sqlalchemy.dialects import mysql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
GENESIS = "0" * 64
FIELDS = ("seq", "at", "actor_id", "actor", "agency_code", "client_ip", "action", "object_type", "object_id",
          "fields", "outcome", "detail")  # fmt: skip
BATCH = 2000
INDEX = "ux_audit_event_entry_mac"

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
    sa.column("nonce", sa.String),
)
head = sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq", sa.Integer), sa.column("hash", sa.String))


def _canonical(values, with_nonce: bool) -> str:
    out = []
    for name in FIELDS:
        v = values.get(name)
        if isinstance(v, datetime.datetime):
            v = v.isoformat(timespec="microseconds")
        out.append(v)
    if with_nonce and values.get("nonce") is not None:
        out.append(values["nonce"])
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _mac(key: bytes, message: str | bytes) -> str:
    return hmac.new(key, message if isinstance(message, bytes) else message.encode(), hashlib.sha256).hexdigest()


def _entry(key, values, with_nonce: bool, object_id_later: bool) -> str:
    content = {**values, "seq": None}
    prefix = b"entry|"
    if object_id_later:
        content["object_id"], prefix = None, b"entry-object-id-later|"
    return _mac(key, prefix + _canonical(content, with_nonce).encode())


def _entry_kind(key, values, mac, with_nonce: bool) -> bool | None:
    """Whether ``mac`` seals these values with their object id (False), without it
    (True: written in one statement with its row), or not at all (None)."""
    if not mac:
        return None
    for later in (False, True):
        if hmac.compare_digest(_entry(key, values, with_nonce, later), mac):
            return later
    return None


def _link_new(key, prev, values) -> str:
    message = prev + "|" + _canonical(values, True)
    if values.get("nonce") is not None:
        message += "|" + (values.get("entry_mac") or "")
    return _mac(key, message)


def _link_old(key, prev, values) -> str:
    return _mac(key, prev + "|" + _canonical(values, False))


def _key() -> bytes:
    key = current_app.config.get("AUDIT_CHAIN_KEY")
    if not key:
        raise RuntimeError("migration 0016 needs AUDIT_CHAIN_KEY (configuration or instance/audit_chain_key)")
    return key.encode()


def upgrade():
    conn = op.get_bind()
    key = _key()
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("nonce", sa.String(length=32), nullable=True))
    if conn.dialect.name in ("mysql", "mariadb"):
        op.alter_column("audit_event", "at", type_=mysql.DATETIME(fsp=6), existing_type=sa.DateTime(),
                        existing_nullable=False)  # fmt: skip
    cols = [events.c[name] for name in ("id", *FIELDS, "entry_mac")]
    waiting = conn.execute(sa.select(*cols).where(events.c.seq.is_(None)).order_by(events.c.id)).mappings().all()
    seen, copies, unsealed = set(), 0, 0
    for row in waiting:
        values, mac = dict(row), row["entry_mac"]
        if mac in seen:  # a copy of an earlier queued row: no seal (and no clash on the index)
            conn.execute(events.update().where(events.c.id == row["id"]).values(entry_mac=None))
            copies += 1
            continue
        if mac:
            seen.add(mac)
        later = _entry_kind(key, values, mac, with_nonce=False)
        if later is None:
            unsealed += 1
            continue  # not written by the platform: the sealer refuses it as before
        values["nonce"] = secrets.token_hex(16)
        new = _entry(key, values, True, later)
        conn.execute(events.update().where(events.c.id == row["id"]).values(nonce=values["nonce"], entry_mac=new))
    if copies or unsealed:
        log.warning(
            "audit events waiting for the sealer: %d copies and %d not sealed by the platform", copies, unsealed
        )
    op.create_index(INDEX, "audit_event", ["entry_mac"], unique=True)


def downgrade():
    conn = op.get_bind()
    key = _key()
    cols = [events.c[name] for name in ("id", "prev_hash", "hash", "entry_mac", "nonce", *FIELDS)]
    statement = events.update().where(events.c.id == sa.bindparam("row_id"))
    statement = statement.values(prev_hash=sa.bindparam("p"), hash=sa.bindparam("h"), entry_mac=None)
    new_prev = old_prev = GENESIS
    expected = 1
    while True:  # a page of rows at a time, by seq (no cursor open across the updates)
        page = conn.execute(
            sa.select(*cols).where(events.c.seq >= expected).order_by(events.c.seq).limit(BATCH)
        ).mappings().all()  # fmt: skip
        updates = []
        for row in page:
            values = dict(row)
            if (values["seq"] != expected or values["prev_hash"] != new_prev
                    or _link_new(key, new_prev, values) != values["hash"]):  # fmt: skip
                raise RuntimeError(
                    f"audit chain broken at seq {expected} (id {values['id']}): not downgraded; investigate with"
                    " `flask audit verify` first"
                )
            new_prev = values["hash"]
            old_hash = _link_old(key, old_prev, values)
            updates.append({"row_id": values["id"], "p": old_prev, "h": old_hash})
            old_prev = old_hash
            expected += 1
        if updates:
            conn.execute(statement, updates)
        if len(page) < BATCH:
            break
    conn.execute(head.update().where(head.c.id == 1).values(hash=old_prev))
    waiting = conn.execute(sa.select(*cols).where(events.c.seq.is_(None)).order_by(events.c.id)).mappings().all()
    op.drop_index(INDEX, table_name="audit_event")
    for row in waiting:
        values = dict(row)
        later = _entry_kind(key, values, values["entry_mac"], with_nonce=True)
        if later is not None:
            old = _entry(key, values, False, later)
            conn.execute(events.update().where(events.c.id == row["id"]).values(entry_mac=old))
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_column("nonce")

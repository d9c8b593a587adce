"""Re-encrypting the data at rest under the newest field-encryption key.

``FIELD_ENCRYPTION_KEYS`` lists Fernet keys, newest first: the newest
encrypts, all decrypt. To rotate, an administrator puts a new key first,
restarts the platform and runs ``flask keys rotate``: every encrypted column
of every table (found by its column type, so a new one is never forgotten)
is re-encrypted in batches, each committed on its own, so the command can be
stopped and run again. Once it reports nothing left to rotate, the old key
can be removed from the list. Values are never printed or logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Text, bindparam, select, type_coerce, update

from app.lib import fieldcrypt
from app.lib.fieldcrypt import EncryptedText


@dataclass
class Rotation:
    rotated: dict[str, int] = field(default_factory=dict)  # "table.column": values re-encrypted
    current: int = 0  # already under the newest key
    unreadable: dict[str, int] = field(default_factory=dict)  # no configured key decrypts them

    @property
    def total(self) -> int:
        return sum(self.rotated.values())


def encrypted_columns(metadata) -> list[tuple]:
    """(table, primary key column, encrypted column) for every encrypted column."""
    found = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        keys = list(table.primary_key.columns)
        for column in table.columns:
            if isinstance(column.type, EncryptedText) and len(keys) == 1:
                found.append((table, keys[0], column))
    return found


def rotate_all(engine, metadata, batch: int = 500) -> Rotation:
    """Re-encrypt every value not yet under the newest key; see the module docstring."""
    result = Rotation()
    for table, key, column in encrypted_columns(metadata):
        name = f"{table.name}.{column.name}"
        raw = type_coerce(column, Text)  # the ciphertext as stored, not decrypted
        change = (
            update(table)
            .where(key == bindparam("pk"))
            .values({column.name: type_coerce(bindparam("token"), Text)})
            .execution_options(synchronize_session=False)
        )
        last = None
        while True:
            stmt = select(key, raw).where(column.is_not(None)).order_by(key).limit(batch)
            if last is not None:
                stmt = stmt.where(key > last)
            with engine.begin() as conn:
                rows = conn.execute(stmt).all()
                if not rows:
                    break
                last = rows[-1][0]
                changes = []
                for pk, token in rows:
                    if fieldcrypt.is_current(token):
                        result.current += 1
                        continue
                    try:
                        changes.append({"pk": pk, "token": fieldcrypt.rotate(token)})
                    except ValueError:
                        result.unreadable[name] = result.unreadable.get(name, 0) + 1
                if changes:
                    conn.execute(change, changes)
                    result.rotated[name] = result.rotated.get(name, 0) + len(changes)
    return result


def rotate(session, engine, metadata, batch: int = 500) -> Rotation:
    """Command (`flask keys rotate`, by the operator): re-encrypt everything
    under the newest key (batches that commit as they go: safe to stop and run
    again), then record the run in the audit trail with its counts."""
    from app.services import actors, audit
    from app.services.command import transaction

    result = rotate_all(engine, metadata, batch=batch)
    with transaction(session):
        audit.record(
            session,
            "keys_rotated",
            object_type="FieldEncryption",
            outcome="ok" if not result.unreadable else "error",
            detail={"rotated": result.total, "unreadable": sum(result.unreadable.values())},
            actor=actors.OPERATOR,
        )
    return result

"""Rotating the field-encryption key, told as the county's administrator does it:
put a new key first, run ``flask keys rotate``, then drop the old key."""

from cryptography.fernet import Fernet
from sqlalchemy import select, text

from app.lib import fieldcrypt
from tests.conftest import Database, build_app


def test_the_administrator_rotates_the_key_and_then_drops_the_old_one(tmp_path):
    database = Database("sqlite", tmp_path)
    app = build_app(database.url, seed=False)
    old_keys = app.config["FIELD_ENCRYPTION_KEYS"]
    new_key = Fernet.generate_key().decode()
    try:
        with app.app_context():
            from app.extensions import db
            from app.models.queries import QueryLog
            from app.models.sources import DataSource

            db.session.add(DataSource(code="ROT-1", name="輪替測試", kind="sql", database=":memory:",
                                      secret="S3cret-rot", options='{"dialect": "sqlite"}'))  # fmt: skip
            db.session.add(QueryLog(form_code="rot.test", outcome="ok", row_count=0, params='{"id_no": "A123456789"}',
                                    snapshot='{"sections": ["王小明"]}'))  # fmt: skip
            db.session.commit()

            def stored():
                return db.session.execute(text(
                    "SELECT (SELECT secret FROM data_source WHERE code = 'ROT-1'), "
                    "(SELECT params FROM query_log WHERE form_code = 'rot.test'), "
                    "(SELECT snapshot FROM query_log WHERE form_code = 'rot.test')")).one()  # fmt: skip

            before = stored()
            runner = app.test_cli_runner()
            # 1. The new key goes first; the old one still decrypts what is stored.
            fieldcrypt.configure(f"{new_key},{old_keys}")
            first = runner.invoke(args=["keys", "rotate", "--batch", "1"])
            assert first.exit_code == 0, first.output
            assert "data_source.secret: 1 re-encrypted" in first.output
            assert "query_log.params: 1 re-encrypted" in first.output and "3 values re-encrypted" in first.output
            after = stored()
            assert all(a != b for a, b in zip(after, before, strict=True))
            assert all("A123456789" not in v and "王小明" not in v and "S3cret" not in v for v in after)
            # Run again: nothing left under the old key.
            again = runner.invoke(args=["keys", "rotate"])
            assert again.exit_code == 0 and "0 values re-encrypted, 3 already under the newest key" in again.output
            # 2. The old key is dropped: everything still reads.
            fieldcrypt.configure(new_key)
            db.session.expire_all()
            assert db.session.scalar(select(DataSource.secret).where(DataSource.code == "ROT-1")) == "S3cret-rot"
            log = db.session.scalar(select(QueryLog).where(QueryLog.form_code == "rot.test"))
            assert (log.params, log.snapshot) == ('{"id_no": "A123456789"}', '{"sections": ["王小明"]}')
            # A value no configured key can read is reported, left as it is, and the command fails.
            fieldcrypt.configure(Fernet.generate_key().decode())
            lost = runner.invoke(args=["keys", "rotate"])
            assert lost.exit_code == 1 and "data_source.secret: 1 values no configured key can decrypt" in lost.output
            assert stored() == after
            fieldcrypt.configure(new_key)
            from app.models.audit import AuditEvent

            outcomes = db.session.scalars(
                select(AuditEvent.outcome).where(AuditEvent.action == "keys_rotated").order_by(AuditEvent.id)
            ).all()
            assert outcomes == ["ok", "ok", "error"]
            db.engine.dispose()
    finally:
        fieldcrypt.configure(old_keys)
        database.drop()

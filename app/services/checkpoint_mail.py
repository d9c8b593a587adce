"""The auditors' copy of each signed checkpoint of the audit chain, queued in
the outbox (sent by `flask worker outbox`). Kept apart from the audit package,
which the outbox itself uses: the sealer is handed ``mail`` by `flask worker
sealer`, `flask audit checkpoint` calls it.
"""

from __future__ import annotations

import json

from flask import current_app
from flask_appbuilder.security.sqla.models import Role
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models.org import PlatformUser
from app.services import outbox
from app.services.audit.checkpoints import MAIL_TOPIC, key_id, public_pem, signing_key


def recipients(session: Session, config=None) -> list[str]:
    """``AUDIT_CHECKPOINT_MAIL_TO``, or the active accounts holding ``AUDIT_CHECKPOINT_ROLE``."""
    config = config or current_app.config
    listed = [a.strip() for a in (config.get("AUDIT_CHECKPOINT_MAIL_TO") or "").split(",") if a.strip()]
    if listed:
        return listed
    rows = session.scalars(
        select(PlatformUser.email)
        .join(PlatformUser.roles)
        .where(Role.name == config.get("AUDIT_CHECKPOINT_ROLE", "Auditor"), PlatformUser.active.is_(True))
        .where(PlatformUser.email.is_not(None))
        .distinct()
    ).all()
    return sorted(e for e in rows if e)


def mail(engine, fields: dict, config=None) -> int:
    """Queue the checkpoint to the auditors (outbox, sent by `flask worker outbox`); returns how many."""
    config = config or current_app.config
    key = signing_key(config["AUDIT_SIGNING_KEY"])
    line = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    subject = f"【稽核軌跡】簽章檢查點 seq {fields['seq']} / Audit trail signed checkpoint"
    body = (
        "稽核人員您好：\n\n"
        f"平台稽核軌跡於 {fields['at']}（UTC）共 {fields['count']} 筆，鏈首序號 {fields['seq']}。"
        "請保存本信件：下列檢查點以平台的簽章金鑰簽署，可用以確認稽核軌跡其後未遭截短或改寫"
        "（flask audit verify --checkpoints 檔案 --public-key 公鑰）。\n\n"
        f"The audit trail held {fields['count']} events at {fields['at']} (UTC), head at seq {fields['seq']}. "
        "Keep this message: the checkpoint below is signed with the platform's signing key and shows later "
        "that the trail was neither cut off nor rewritten (flask audit verify --checkpoints FILE "
        "--public-key KEY).\n\n"
        f"{line}\n\n"
        f"公鑰 / Public key (id {key_id(key)}):\n{public_pem(key)}"
    )
    with engine.begin() as conn, Session(bind=conn) as session:
        to = recipients(session, config)
        for address in to:
            outbox.enqueue(session, address, subject, body, topic=MAIL_TOPIC)
        session.flush()
    return len(to)

"""The attachments of a case: checking one is the registered file, and
downloading the original or the stamped copy; both audited."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

from app.models.notify import Attachment
from app.services.actors import Actor
from app.services.command import transaction
from app.services.errors import NotFound
from app.services.notify import attachments, results
from app.services.notify.cases import visible_case
from app.services.notify.records import audit_case, row

COPIES = ("original", "stamped")


def _attachment(session, actor: Actor, attachment_id) -> Attachment:
    att = row(session, Attachment, attachment_id)
    if att is None:
        raise NotFound(_l("No such attachment."))
    visible_case(session, actor, att.case.case_no)  # the case's access rule
    return att


def check_attachment(session, actor: Actor, attachment_id) -> results.AttachmentCheck:
    """Is the stored file the one that was registered (hash and seal)? Audited."""
    with transaction(session):
        att = _attachment(session, actor, attachment_id)
        ok = attachments.verify(att.original, att.sha256, att.seal)
        audit_case(session, actor, "attachment_check", att.case, detail={"attachment": att.id, "intact": ok})
        return results.AttachmentCheck(
            id=att.id,
            case_no=att.case.case_no,
            filename=att.filename,
            kind=att.kind,
            sha256=att.sha256,
            uploaded_by=att.uploaded_by,
            uploaded_at=att.uploaded_at,
            intact=ok,
        )


def download_attachment(session, actor: Actor, attachment_id, copy: str) -> tuple[results.AttachmentView, bytes]:
    """The original or the stamped copy, for those who may see the case; every
    download of a consent scan (personal data) leaves an audit record."""
    if copy not in COPIES:
        raise NotFound(_l("No such attachment."))
    with transaction(session):
        att = _attachment(session, actor, attachment_id)
        data = att.original if copy == "original" else att.stamped
        if not data:
            raise NotFound(_l("No such attachment."))
        audit_case(session, actor, "attachment_download", att.case, detail={"attachment": att.id, "copy": copy})
        return results.attachment_view(att), data

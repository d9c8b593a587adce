"""The quarterly account review and dormant accounts."""

from __future__ import annotations

import datetime
import io

import pytest
from flask_appbuilder.security.sqla.models import Role
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models.account_review import AccountReview
from app.models.audit import AuditEvent
from app.models.org import Agency, PlatformUser
from app.models.outbox import OutboxMessage
from app.services import account_review, actors
from app.services.actors import OPERATOR
from app.services.audit import checkpoints
from app.services.errors import Conflict, Forbidden, InvalidInput
from tests.conftest import copied_app


@pytest.fixture
def review_app(backend, tmp_path):
    with copied_app(backend, tmp_path) as application, application.app_context():
        yield application
        db.session.remove()


def _user(name) -> PlatformUser:
    return db.session.scalar(select(PlatformUser).where(PlatformUser.username == name))


def _actor(name):
    return actors.for_user(_user(name), session=db.session)


def _events(action):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()


def test_a_dormant_account_is_warned_then_disabled_and_one_that_signs_in_is_not(review_app):
    now = datetime.datetime.utcnow()
    handler, clerk = _user("handler.land"), _user("clerk")
    handler.last_login = now - datetime.timedelta(days=100)
    clerk.last_login = now - datetime.timedelta(days=95)
    db.session.commit()

    counts = account_review.dormant_round(db.session, OPERATOR, now=now)
    assert counts["warned"] == 2 and counts["disabled"] == 0
    mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "account:dormant")).all()
    assert {m.recipient for m in mails} == {handler.email, clerk.email}
    assert "停用" in mails[0].body
    assert _user("handler.land").active and _user("handler.land").dormant_warned_at is not None

    # The clerk signs in after the warning; a week later only the handler is disabled.
    _user("clerk").last_login = now + datetime.timedelta(days=1)
    db.session.commit()
    later = now + datetime.timedelta(days=8)
    counts = account_review.dormant_round(db.session, OPERATOR, now=later)
    assert counts["disabled"] == 1
    assert not _user("handler.land").active
    assert _user("clerk").active and _user("clerk").dormant_warned_at is None
    assert [e.object_id for e in _events("account_dormant_disabled")] == [str(handler.id)]
    assert len(_events("account_dormant_warned")) == 2


def test_the_last_admin_is_never_disabled_for_dormancy(review_app):
    now = datetime.datetime.utcnow()
    _user("admin").last_login = now - datetime.timedelta(days=200)
    db.session.commit()
    account_review.dormant_round(db.session, OPERATOR, now=now)
    counts = account_review.dormant_round(db.session, OPERATOR, now=now + datetime.timedelta(days=30))
    assert counts["kept"] == 1 and _user("admin").active
    assert _events("account_dormant_kept")[0].outcome == "refused"


def test_the_quarterly_review_is_decided_exported_signed_and_overdue_ones_go_to_the_auditors(review_app):
    land = db.session.scalar(select(Agency).where(Agency.code == "LAND"))
    # The only Admin works at the land office for this story; the handler got a role last month.
    admin = _user("admin")
    admin.agency_id = land.id
    admin.roles = [*admin.roles, db.session.scalar(select(Role).where(Role.name == "FormDesigner"))]
    handler = _user("handler.land")
    handler.roles = [*handler.roles, db.session.scalar(select(Role).where(Role.name == "Clerk"))]
    db.session.commit()
    supervisor = _actor("supervisor.land")

    with pytest.raises(Forbidden):
        account_review.open_review(db.session, _actor("handler.land"))
    review = account_review.open_review(db.session, supervisor)
    items = {i.username: i for i in review.items}
    assert {"admin", "supervisor.land", "handler.land"} <= set(items)
    assert items["handler.land"].roles_before == ["Clerk", "Handler"]
    assert items["handler.land"].role_changes, "the role given since the last review is listed"

    # Bad decisions change nothing.
    with pytest.raises(InvalidInput):
        account_review.decide(db.session, supervisor, items["handler.land"].id, "change", ["Admin"])
    with pytest.raises(InvalidInput):
        account_review.decide(db.session, supervisor, items["handler.land"].id, "change", [])
    with pytest.raises(InvalidInput):
        account_review.decide(db.session, supervisor, items["handler.land"].id, "promote")
    with pytest.raises(Forbidden):
        account_review.decide(db.session, _actor("supervisor.tax"), items["handler.land"].id, "confirm")
    # Disabling (or stripping) the last Admin through the review is refused, and the refusal audited.
    with pytest.raises(Conflict):
        account_review.decide(db.session, supervisor, items["admin"].id, "disable")
    with pytest.raises(Conflict):
        account_review.decide(db.session, supervisor, items["admin"].id, "change", ["FormDesigner"])
    assert _user("admin").active
    assert len(_events("account_review_refused")) == 2

    with pytest.raises(Conflict):
        account_review.complete(db.session, supervisor, review.id)
    for item in review.items:
        if item.username == "handler.land":
            account_review.decide(db.session, supervisor, item.id, "change", ["Handler"])
        elif item.username == "supervisor.land" or item.username == "admin":
            account_review.decide(db.session, supervisor, item.id, "confirm")
        else:
            account_review.decide(db.session, supervisor, item.id, "disable")
    assert [r.name for r in _user("handler.land").roles] == ["Handler"]

    done = account_review.complete(db.session, supervisor, review.id)
    assert done.completed and done.export_sha256
    with pytest.raises(Conflict):
        account_review.decide(db.session, supervisor, items["admin"].id, "disable")

    made = account_review.export(db.session, supervisor, review.id)
    sig = account_review.export(db.session, supervisor, review.id, "sig")
    public = checkpoints.signing_key().public_key()
    assert account_review.verify_export(made.data, sig.data.decode(), public)
    tampered = bytearray(made.data)
    tampered[len(tampered) // 2] ^= 0x01
    assert not account_review.verify_export(bytes(tampered), sig.data.decode(), public)
    sheet = load_workbook(io.BytesIO(made.data)).active
    cells = [str(c.value) for row in sheet.iter_rows() for c in row if c.value is not None]
    assert "handler.land" in cells and any("帳號清查" in c or "account review" in c.lower() for c in cells)
    with pytest.raises(Forbidden):
        account_review.export(db.session, _actor("supervisor.tax"), review.id)
    assert account_review.export(db.session, _actor("auditor"), review.id).data == made.data
    states = {(r.agency, r.state) for r in account_review.overview(db.session, _actor("admin"))}
    assert (land.name, "completed") in states
    with pytest.raises(Forbidden):
        account_review.overview(db.session, _actor("clerk"))
    assert {"account_review_open", "account_review_complete", "account_review_export"} <= {
        e.action for e in db.session.scalars(select(AuditEvent).where(AuditEvent.object_type == "AccountReview"))
    }

    # Next quarter: the land office's review is done; the tax bureau's (never opened) is overdue, reported once.
    _, end = account_review.period_bounds(review.period)
    next_quarter = end + datetime.timedelta(days=3)
    reported = account_review.report_overdue(db.session, OPERATOR, now=next_quarter)
    assert "TAX" in reported and "LAND" not in reported
    assert account_review.report_overdue(db.session, OPERATOR, now=next_quarter) == []
    mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.topic == "account:review-overdue")).all()
    assert mails and all("TAX" in m.body or "LAND" not in m.body for m in mails)
    assert db.session.scalar(
        select(AccountReview.overdue_reported_at).where(
            AccountReview.agency_id == db.session.scalar(select(Agency.id).where(Agency.code == "TAX"))
        )
    )

"""The signed weekly review (issue 19 item 2): each agency's weekly query log is reviewed by
its supervisor, who signs it: with the certificate card bound to the account (a PKCS#7
signature over a statement naming the agency, the week and the PDF's SHA-256), or else by
entering the password again (recorded). The PDF as reviewed is kept, so a signed review is
verifiable later: the digest against the kept PDF, the card's signature against the
statement and the signer's binding. Overdue reviews show on the auditor's desk."""

from __future__ import annotations

import base64
import datetime
import hashlib
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from werkzeug.security import check_password_hash

from app.lib.rocdate import utc_midnight
from app.models.anomaly import WeeklyReview
from app.models.org import PlatformUser
from app.models.queries import QueryLog
from app.services import actors, audit, certauth
from app.services.actors import Actor
from app.services.cards import bindings
from app.services.command import refuse, transaction
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.reports.filters import taipei_today
from app.services.reports.pdf import weekly_pdf
from app.services.reports.weekly import week_of, weekly_query_log
from app.services.roles import AUDIT_DESK, SIGN_WEEKLY_REVIEW

WEEKS = 8
NOT_A_WEEK = _l("Choose one of the last %(n)s finished weeks.")
NO_REVIEW = _l("No such weekly review for you.")
SIGNED_ALREADY = _l("This week's review has been signed already.")


@dataclass
class WeekStatus:
    monday: datetime.date
    sunday: datetime.date
    queries: int
    review: WeeklyReview | None

    @property
    def signed(self) -> bool:
        return self.review is not None and self.review.signed_at is not None


@dataclass
class ReviewPage:
    """The supervisor's review page: the weeks, and whether a certificate card is bound to the
    account (then the page signs with the card; without one, with the password again)."""

    weeks: list[WeekStatus]
    card: bool


@dataclass
class ReviewCheck:
    """A signed review checked again: ``ok`` when the kept PDF matches its digest and the
    signature (card) verifies for the signer's bound card; ``problems`` say what does not."""

    review_id: int
    ok: bool
    method: str | None
    signer: str | None
    signed_at: datetime.datetime | None
    problems: list[str]


def statement(agency_code: str, monday: datetime.date, pdf_sha256: str) -> bytes:
    """What the card signs: the agency, the week and the PDF's digest (UTF-8 text)."""
    return (
        f"weekly-query-log-review\nagency: {agency_code}\nweek: {monday.isoformat()}\npdf-sha256: {pdf_sha256}\n"
    ).encode()


def _supervisor(actor: Actor) -> None:
    if not actor.signed_in or not actor.can(SIGN_WEEKLY_REVIEW) or not actor.agency_code:
        raise Forbidden(_l("Only the agency's supervisor signs its weekly query log."))


def _finished_week(day) -> datetime.date:
    if not isinstance(day, datetime.date):
        raise InvalidInput(NOT_A_WEEK, n=WEEKS)
    monday = week_of(day)[0]
    this_monday = week_of(taipei_today())[0]
    if not this_monday - datetime.timedelta(weeks=WEEKS) <= monday < this_monday:
        raise InvalidInput(NOT_A_WEEK, n=WEEKS)
    return monday


def weeks(session, actor: Actor) -> list[WeekStatus]:
    """The agency's last WEEKS finished weeks, newest first, with their queries and review (a read)."""
    _supervisor(actor)
    this_monday = week_of(taipei_today())[0]
    mondays = [this_monday - datetime.timedelta(weeks=back) for back in range(1, WEEKS + 1)]
    reviews = {
        r.week_start: r
        for r in session.scalars(
            select(WeeklyReview).where(WeeklyReview.agency_code == actor.agency_code,
                                       WeeklyReview.week_start >= mondays[-1])
        )
    }  # fmt: skip
    log = QueryLog.__table__
    out = []
    for monday in mondays:
        count = session.scalar(
            select(func.count()).where(
                log.c.agency_code == actor.agency_code, log.c.at >= utc_midnight(monday),
                log.c.at < utc_midnight(monday + datetime.timedelta(days=7)),
            )
        )  # fmt: skip
        out.append(WeekStatus(monday, monday + datetime.timedelta(days=6), int(count or 0), reviews.get(monday)))
    return out


def overview(session, actor: Actor) -> ReviewPage:
    """The review page (a read): ``weeks``, and whether the supervisor has a card bound (and
    still valid) to sign with. Raises Forbidden."""
    found = weeks(session, actor)
    now = datetime.datetime.utcnow()
    card = any(b.not_after > now for b in bindings.of_user(session, actor.user_id))
    return ReviewPage(found, card)


def prepare(session, actor: Actor, day) -> WeeklyReview:
    """Command: the week's query log as PDF, kept for the review with its digest (prepared once;
    a week not yet signed is prepared again, with what the log now holds). Audited like the
    weekly log's export. Raises Forbidden, InvalidInput."""
    _supervisor(actor)
    monday = _finished_week(day)
    with transaction(session):
        review = session.scalar(
            select(WeeklyReview).where(WeeklyReview.agency_code == actor.agency_code, WeeklyReview.week_start == monday)
        )
        if review is not None and review.signed_at is not None:
            return review
        sections = weekly_query_log(session, monday, actor.agency_code)
        pdf = weekly_pdf(sections, monday, monday + datetime.timedelta(days=6))
        if review is None:
            review = WeeklyReview(agency_code=actor.agency_code, week_start=monday, pdf_sha256="")
            session.add(review)
        review.pdf, review.pdf_sha256 = pdf, hashlib.sha256(pdf).hexdigest()
        review.prepared_at = datetime.datetime.utcnow()
        session.flush()
        audit.record(session, "weekly_review.prepared", object_type="WeeklyReview", object_id=review.id,
                     detail={"agency": actor.agency_code, "week": monday.isoformat(), "sha256": review.pdf_sha256},
                     actor=actor)  # fmt: skip
    return review


def _own(session, actor: Actor, review_id) -> WeeklyReview:
    review = None
    if isinstance(review_id, int) and 0 < review_id < 2**31:
        review = session.get(WeeklyReview, review_id)
    if review is None or (review.agency_code != actor.agency_code and not _reads_all(actor)):
        raise NotFound(NO_REVIEW)
    return review


def _reads_all(actor: Actor) -> bool:
    return actor.can(AUDIT_DESK) or actor.can(actors.WEEKLY_ALL_AGENCIES) and actor.can(actors.READ_ALL_QUERIES)


def pdf_of(session, actor: Actor, review_id) -> WeeklyReview:
    """Command: the PDF as reviewed (audited). Raises NotFound."""
    review = _own(session, actor, review_id)
    with transaction(session):
        audit.record(session, "weekly_review.pdf", object_type="WeeklyReview", object_id=review.id, actor=actor)
    return review


def to_sign(session, actor: Actor, review_id) -> bytes:
    """What the supervisor's card signs for the prepared review (a read): its ``statement``.
    Raises Forbidden, NotFound (not a review of the supervisor's agency), Conflict (signed)."""
    _supervisor(actor)
    review = None
    if isinstance(review_id, int) and 0 < review_id < 2**31:
        review = session.get(WeeklyReview, review_id)
    if review is None or review.agency_code != actor.agency_code:
        raise NotFound(NO_REVIEW)
    if review.signed_at is not None:
        raise Conflict(SIGNED_ALREADY)
    return statement(review.agency_code, review.week_start, review.pdf_sha256)


def sign(session, actor: Actor, review_id, *, password: str | None = None, signature=None,
         comment: str | None = None) -> WeeklyReview:  # fmt: skip
    """Command: the supervisor signs the prepared review: ``signature`` (base64 PKCS#7 over
    ``statement``, by the card bound to the account) or ``password`` (entered again). Every
    refusal audited. Raises Forbidden (not the supervisor, wrong password, not their card,
    card refused), NotFound, Conflict (signed already), InvalidInput."""
    _supervisor(actor)
    comment = (comment or "").strip()
    if len(comment) > 2000:
        raise InvalidInput(_l("Say it in at most %(n)s characters."), n=2000)
    review = None
    if isinstance(review_id, int) and 0 < review_id < 2**31:
        review = session.get(WeeklyReview, review_id)
    if review is None or review.agency_code != actor.agency_code:
        raise refuse(session, NotFound(NO_REVIEW), actor, "weekly_review.signed", object_type="WeeklyReview",
                     object_id=review_id if isinstance(review_id, int) and 0 < review_id < 2**31 else None)  # fmt: skip
    if review.signed_at is not None:
        raise Conflict(SIGNED_ALREADY)
    fingerprint, der = None, None
    if signature:
        try:
            der = base64.b64decode(str(signature).strip(), validate=True)
        except ValueError:
            raise InvalidInput(_l("The signature is not base64 text.")) from None
        try:
            card = certauth.verify_signature(der, statement(review.agency_code, review.week_start, review.pdf_sha256))
        except certauth.CardRefused as exc:
            raise refuse(session, Forbidden(_l("The card's signature was refused: %(reason)s"), reason=str(exc)),
                         actor, "weekly_review.signed", object_type="WeeklyReview", object_id=review.id,
                         detail={"method": "card", "reason": exc.reason}) from None  # fmt: skip
        binding = bindings.find(session, card)
        if binding is None or binding.user_id != actor.user_id:
            raise refuse(session, Forbidden(_l("This card is not bound to your account.")), actor,
                         "weekly_review.signed", object_type="WeeklyReview", object_id=review.id,
                         detail={"method": "card"})  # fmt: skip
        method, fingerprint = "card", card.fingerprint
    else:
        user = session.get(PlatformUser, actor.user_id)
        if not password or user is None or not user.password or not check_password_hash(user.password, password):
            raise refuse(session, Forbidden(_l("The password is not right; the review is not signed.")), actor,
                         "weekly_review.signed", object_type="WeeklyReview", object_id=review.id,
                         detail={"method": "password"})  # fmt: skip
        method = "password"
    with transaction(session):
        review.method, review.signature, review.signer_fingerprint = method, der, fingerprint
        review.comment = comment or None
        review.signed_by, review.signed_by_name = actor.user_id, actor.username
        review.signed_at = datetime.datetime.utcnow()
        audit.record(session, "weekly_review.signed", object_type="WeeklyReview", object_id=review.id,
                     detail={"agency": review.agency_code, "week": review.week_start.isoformat(), "method": method,
                             "sha256": review.pdf_sha256}, actor=actor)  # fmt: skip
    return review


def verify(session, actor: Actor, review_id) -> ReviewCheck:
    """Command: check a signed review again (audited): the kept PDF against its digest; a card's
    signature against the statement, and the card still bound to the signer. Raises NotFound."""
    review = _own(session, actor, review_id)
    problems: list[str] = []
    if review.signed_at is None:
        problems.append(str(_l("Not signed.")))
    if review.pdf is None or hashlib.sha256(review.pdf).hexdigest() != review.pdf_sha256:
        problems.append(str(_l("The kept PDF does not match the signed digest.")))
    if review.method == "card":
        try:
            card = certauth.verify_signature(
                review.signature or b"", statement(review.agency_code, review.week_start, review.pdf_sha256),
                now=review.signed_at.replace(tzinfo=datetime.UTC) if review.signed_at else None,
            )  # fmt: skip
            if card.fingerprint != review.signer_fingerprint:
                problems.append(str(_l("The signature is by another card than the one recorded.")))
        except certauth.CardRefused as exc:
            problems.append(str(_l("The card's signature does not verify: %(reason)s", reason=str(exc))))
    ok = not problems
    with transaction(session):
        audit.record(session, "weekly_review.verified", object_type="WeeklyReview", object_id=review.id,
                     outcome="ok" if ok else "failed", detail={"problems": len(problems)}, actor=actor)  # fmt: skip
    return ReviewCheck(review.id, ok, review.method, review.signed_by_name, review.signed_at, problems)

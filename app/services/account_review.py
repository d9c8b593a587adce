"""The quarterly account review and dormant accounts.

Every quarter each agency's supervisor confirms, changes (takes roles away)
or disables each staff account of the agency, seeing the role changes made
since the last review; the finished review is exported to a workbook whose
SHA-256 is signed with the platform's signing key (as the audit checkpoints:
``AUDIT_SIGNING_KEY``), and reviews not finished when their quarter is over
are reported to the auditors. Accounts unused for ACCOUNT_DORMANT_DAYS are
warned by e-mail and disabled ACCOUNT_DORMANT_GRACE_DAYS later if still
unused. Nobody disables or strips the last active Admin this way
(``accounts.LAST_ADMIN``). A review only takes roles away: roles are given on
the administrators' user screen, where separation of duties is checked.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
from dataclasses import dataclass

from flask import current_app
from flask_appbuilder.security.sqla.models import Role
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from app.lib.rocdate import format_roc, format_roc_datetime
from app.models.account_review import AccountReview, AccountReviewItem
from app.models.audit import AuditEvent
from app.models.org import Agency, PlatformUser
from app.services import audit, outbox
from app.services.accounts import ADMIN_ROLE, LAST_ADMIN, active_admin_ids, lock_admins
from app.services.command import refuse, transaction
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.roles import REVIEW_ACCOUNTS

DECISIONS = ("confirm", "change", "disable")
DECISION_LABELS = {"confirm": _l("Confirmed"), "change": _l("Roles changed"), "disable": _l("Disabled")}
CARD_HOLDER_ROLES = ("Citizen", "Business")
NOT_ALLOWED = _l("Only a supervisor reviewing their own agency's accounts may do this.")
NO_SUCH_REVIEW = _l("No such account review.")
NO_SUCH_ITEM = _l("No such account in the review.")
BAD_DECISION = _l("Choose confirm, change roles or disable.")
ONLY_REMOVE = _l("A review can only take roles away; roles are given on the user screen.")
KEEP_ONE_ROLE = _l("Keep at least one role, or disable the account.")
ALREADY_DONE = _l("This review is completed and signed: it can no longer be changed.")
UNDECIDED = _l("Decide on every account before completing the review (%(n)s left).")
NOT_DONE = _l("The review is not completed yet: there is no signed export.")
MAIL_TOPIC_DORMANT = "account:dormant"
MAIL_TOPIC_OVERDUE = "account:review-overdue"


# --- quarters --------------------------------------------------------------


def period_of(moment: datetime.datetime) -> str:
    return f"{moment.year}Q{(moment.month - 1) // 3 + 1}"


def period_bounds(period: str) -> tuple[datetime.datetime, datetime.datetime]:
    """The quarter as naive UTC [start, end)."""
    year, quarter = int(period[:4]), int(period[5])
    start = datetime.datetime(year, 3 * quarter - 2, 1)
    end = datetime.datetime(year + quarter // 4, 3 * (quarter % 4) + 1, 1)
    return start, end


def previous_period(period: str) -> str:
    start, _ = period_bounds(period)
    return period_of(start - datetime.timedelta(days=1))


# --- reading ---------------------------------------------------------------


@dataclass(frozen=True)
class ItemView:
    id: int
    user_id: int
    username: str
    name: str
    title: str
    active: bool
    last_login: str
    roles_before: list[str]
    roles_after: list[str]
    role_changes: list[dict]
    decision: str | None
    decision_label: str
    is_admin: bool


@dataclass(frozen=True)
class ReviewView:
    id: int
    agency: str
    agency_code: str
    period: str
    due_on: str
    overdue: bool
    completed: bool
    completed_at: str
    export_sha256: str | None
    items: list[ItemView]
    undecided: int


def _check_reviewer(actor, agency_id: int | None) -> None:
    if not actor.can(REVIEW_ACCOUNTS) or agency_id is None or not actor.same_agency(agency_id):
        raise Forbidden(NOT_ALLOWED)


def _roles(user: PlatformUser) -> list[str]:
    return sorted(r.name for r in user.roles or [])


def _staff(session, agency_id: int) -> list[PlatformUser]:
    users = session.scalars(
        select(PlatformUser).where(PlatformUser.agency_id == agency_id).order_by(PlatformUser.username)
    ).all()
    return [u for u in users if not set(_roles(u)) & set(CARD_HOLDER_ROLES)]


def _role_changes(session, user_id: int, since: datetime.datetime) -> list[dict]:
    """Role changes of the account since ``since``, from the audit trail (when, by whom)."""
    rows = session.execute(
        select(AuditEvent.at, AuditEvent.actor, AuditEvent.action).where(
            AuditEvent.object_type == "User",
            AuditEvent.object_id == str(user_id),
            AuditEvent.at >= since,
            or_(AuditEvent.fields.like("%roles%"), AuditEvent.action.like("account_review_%")),
        ).order_by(AuditEvent.at)
    ).all()  # fmt: skip
    return [{"at": r.at.isoformat(timespec="seconds"), "by": r.actor, "action": r.action} for r in rows]


def _since(session, agency_id: int, period: str) -> datetime.datetime:
    """The start of what the review lists: the last completed review, else one quarter back."""
    last = session.scalar(
        select(AccountReview.completed_at)
        .where(AccountReview.agency_id == agency_id, AccountReview.period < period,
               AccountReview.completed_at.is_not(None))
        .order_by(AccountReview.period.desc()).limit(1)
    )  # fmt: skip
    return last or period_bounds(previous_period(period))[0]


def _view(session, review: AccountReview, now: datetime.datetime | None = None) -> ReviewView:
    now = now or datetime.datetime.utcnow()
    admins = active_admin_ids(session)
    users = {u.id: u for u in session.scalars(select(PlatformUser).where(
        PlatformUser.id.in_([i.user_id for i in review.items])))}  # fmt: skip
    items = []
    for item in review.items:
        user = users.get(item.user_id)
        items.append(
            ItemView(
                id=item.id,
                user_id=item.user_id,
                username=item.username,
                name=user.get_full_name() if user else "",
                title=(user.title or "") if user else "",
                active=bool(user and user.active),
                last_login=format_roc_datetime(item.last_login, seconds=False) if item.last_login else "",
                roles_before=(item.roles_before or "").split(",") if item.roles_before else [],
                roles_after=(item.roles_after or "").split(",") if item.roles_after else [],
                role_changes=[
                    {**c, "at": format_roc_datetime(datetime.datetime.fromisoformat(c["at"]), seconds=False)}
                    for c in json.loads(item.role_changes or "[]")
                ],
                decision=item.decision,
                decision_label=str(DECISION_LABELS.get(item.decision, "")) if item.decision else "",
                is_admin=item.user_id in admins,
            )
        )
    return ReviewView(
        id=review.id,
        agency=review.agency.name,
        agency_code=review.agency.code,
        period=review.period,
        due_on=format_roc(review.due_on.date() - datetime.timedelta(days=1)),
        overdue=review.completed_at is None and now >= review.due_on,
        completed=review.completed_at is not None,
        completed_at=format_roc_datetime(review.completed_at, seconds=False) if review.completed_at else "",
        export_sha256=review.export_sha256,
        items=items,
        undecided=sum(1 for i in review.items if not i.decision),
    )


def _fill(session, review: AccountReview) -> None:
    since = _since(session, review.agency_id, review.period)
    for user in _staff(session, review.agency_id):
        roles = ",".join(_roles(user))
        review.items.append(
            AccountReviewItem(user_id=user.id, username=user.username, roles_before=roles, roles_after=roles,
                              last_login=user.last_login,
                              role_changes=json.dumps(_role_changes(session, user.id, since)))
        )  # fmt: skip


def current_review(session, actor, now: datetime.datetime | None = None) -> ReviewView | None:
    """The review the supervisor works on: the oldest unfinished one of their agency,
    else this quarter's (None when it is not opened yet). Raises Forbidden."""
    _check_reviewer(actor, actor.agency_id)
    now = now or datetime.datetime.utcnow()
    review = session.scalar(
        select(AccountReview)
        .where(AccountReview.agency_id == actor.agency_id, AccountReview.completed_at.is_(None))
        .order_by(AccountReview.period).limit(1)
    )  # fmt: skip
    if review is None:
        review = session.scalar(select(AccountReview).where(
            AccountReview.agency_id == actor.agency_id, AccountReview.period == period_of(now)))  # fmt: skip
    if review is None or not review.items and review.completed_at is None:
        return None
    return _view(session, review, now)


@dataclass(frozen=True)
class AgencyState:
    review_id: int | None
    agency: str
    period: str
    state: str  # completed | open | overdue | not_started
    completed_at: str


def overview(session, actor, now: datetime.datetime | None = None) -> list[AgencyState]:
    """Administrators and auditors: each agency's review of this quarter and any older
    unfinished one (what state, the signed export when completed). Raises Forbidden."""
    from app.services.actors import MANAGE_ACCOUNTS
    from app.services.roles import REVIEW_FLAGS

    if not (actor.can(MANAGE_ACCOUNTS) or actor.can(REVIEW_FLAGS)):
        raise Forbidden(NOT_ALLOWED)
    now = now or datetime.datetime.utcnow()
    period = period_of(now)
    rows = []
    for agency in session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.code)):
        reviews = session.scalars(
            select(AccountReview)
            .where(AccountReview.agency_id == agency.id)
            .where(or_(AccountReview.period == period, AccountReview.completed_at.is_(None)))
            .order_by(AccountReview.period)
        ).all()
        if not any(r.period == period for r in reviews):
            rows.append(AgencyState(None, agency.name, period, "not_started", ""))
        for r in reviews:
            state = "completed" if r.completed_at else ("overdue" if now >= r.due_on else "open")
            done = format_roc_datetime(r.completed_at, seconds=False) if r.completed_at else ""
            rows.append(AgencyState(r.id, agency.name, r.period, state, done))
    return rows


def open_review(session, actor, now: datetime.datetime | None = None) -> ReviewView:
    """Open the review of the supervisor's agency (the oldest unfinished one, else this
    quarter's): one item per staff account with its roles and role changes since the
    last review; audited. Raises Forbidden."""
    _check_reviewer(actor, actor.agency_id)
    now = now or datetime.datetime.utcnow()
    with transaction(session):
        review = session.scalar(
            select(AccountReview)
            .where(AccountReview.agency_id == actor.agency_id, AccountReview.completed_at.is_(None))
            .order_by(AccountReview.period).limit(1)
        )  # fmt: skip
        if review is None:
            period = period_of(now)
            review = session.scalar(select(AccountReview).where(
                AccountReview.agency_id == actor.agency_id, AccountReview.period == period))  # fmt: skip
            if review is None:
                review = AccountReview(agency_id=actor.agency_id, period=period,
                                       due_on=period_bounds(period)[1], opened_at=now)  # fmt: skip
                session.add(review)
        if not review.items and review.completed_at is None:
            _fill(session, review)
            session.flush()
            audit.record(session, "account_review_open", object_type="AccountReview", object_id=review.id,
                         detail={"period": review.period, "accounts": len(review.items)}, actor=actor)  # fmt: skip
        return _view(session, review, now)


def _item(session, actor, item_id) -> AccountReviewItem:
    item = session.get(AccountReviewItem, int(item_id)) if str(item_id).isdigit() else None
    if item is None:
        raise NotFound(NO_SUCH_ITEM)
    _check_reviewer(actor, item.review.agency_id)
    if item.review.completed_at is not None:
        raise Conflict(ALREADY_DONE)
    return item


def decide(session, actor, item_id, decision: str, keep_roles=None) -> None:
    """The supervisor's decision on one account: confirm it, keep only ``keep_roles``
    of its roles (change), or disable it; audited. The last active Admin is never
    disabled or stripped of the Admin role (refused, audited).
    Raises Forbidden, NotFound, InvalidInput, Conflict."""
    item = _item(session, actor, item_id)
    if decision not in DECISIONS:
        raise InvalidInput(BAD_DECISION)
    user = session.get(PlatformUser, item.user_id)
    if user is None:
        raise NotFound(NO_SUCH_ITEM)
    held = _roles(user)
    keep = held
    if decision == "change":
        keep = sorted({str(r) for r in (keep_roles or [])})
        if set(keep) - set(held):
            raise InvalidInput(ONLY_REMOVE)
        if not keep:
            raise InvalidInput(KEEP_ONE_ROLE)
    loses_admin = decision == "disable" or (decision == "change" and ADMIN_ROLE in held and ADMIN_ROLE not in keep)
    if loses_admin and user.active:
        lock_admins(session)
        admins = active_admin_ids(session)
        if user.id in admins and not (admins - {user.id}):
            raise refuse(session, Conflict(LAST_ADMIN), actor, "account_review_refused", object_type="User",
                         object_id=user.id, detail={"decision": decision, "rule": "last_admin"})  # fmt: skip
    with transaction(session):
        if decision == "change" and keep != held:
            user.roles = list(session.scalars(select(Role).where(Role.name.in_(keep))))
        if decision == "disable":
            user.active = False
        item.decision = decision
        item.roles_after = ",".join(keep)
        item.decided_at = datetime.datetime.utcnow()
        item.decided_by = actor.user_id
        audit.record(session, f"account_review_{decision}", object_type="User", object_id=user.id,
                     detail={"review": item.review_id, "removed": sorted(set(held) - set(keep))},
                     actor=actor)  # fmt: skip


def _workbook(view: ReviewView) -> bytes:
    import pandas as pd

    from app.services.reports.excel import write_sheet

    columns = [gettext("Account"), gettext("Name"), gettext("Title"), gettext("Last sign-in"),
               gettext("Roles at review"), gettext("Decision"), gettext("Roles after review"),
               gettext("Role changes since the last review")]  # fmt: skip
    records = [
        [i.username, i.name, i.title, i.last_login, ", ".join(i.roles_before), i.decision_label,
         ", ".join(i.roles_after) if i.decision != "disable" else "",
         "; ".join(f"{c['at']} {c['by']}" for c in i.role_changes)]
        for i in view.items
    ]  # fmt: skip
    heading = [
        gettext("Quarterly account review"),
        f"{gettext('Agency')}：{view.agency}",
        f"{gettext('Quarter')}：{view.period}",
        f"{gettext('Completed')}：{view.completed_at}",
    ]
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        write_sheet(writer, gettext("Account review"), heading, pd.DataFrame(records, columns=columns))
    return buf.getvalue()


def complete(session, actor, review_id, now: datetime.datetime | None = None) -> ReviewView:
    """Complete the review once every account is decided: export it to a workbook and
    sign its SHA-256 (AUDIT_SIGNING_KEY); audited. Raises Forbidden, NotFound, Conflict."""
    from app.services.audit import checkpoints

    review = session.get(AccountReview, int(review_id)) if str(review_id).isdigit() else None
    if review is None:
        raise NotFound(NO_SUCH_REVIEW)
    _check_reviewer(actor, review.agency_id)
    if review.completed_at is not None:
        raise Conflict(ALREADY_DONE)
    left = sum(1 for i in review.items if not i.decision)
    if left or not review.items:
        raise Conflict(UNDECIDED, n=left)
    now = now or datetime.datetime.utcnow()
    with transaction(session):
        review.completed_at = now
        review.completed_by = actor.user_id
        data = _workbook(_view(session, review, now))
        digest = hashlib.sha256(data).hexdigest()
        line = checkpoints.sign(
            {"v": 1, "kind": "account_review", "agency": review.agency.code, "period": review.period,
             "accounts": len(review.items), "sha256": digest, "at": checkpoints.stamp_now(),
             "by": actor.username},
            checkpoints.signing_key(current_app.config["AUDIT_SIGNING_KEY"]),
        )  # fmt: skip
        review.export_data, review.export_sha256 = data, digest
        review.signature = json.dumps(line, sort_keys=True, separators=(",", ":"))
        audit.record(session, "account_review_complete", object_type="AccountReview", object_id=review.id,
                     detail={"period": review.period, "accounts": len(review.items), "sha256": digest},
                     actor=actor)  # fmt: skip
        return _view(session, review, now)


@dataclass(frozen=True)
class Export:
    filename: str
    data: bytes
    mimetype: str


def export(session, actor, review_id, part: str = "xlsx") -> Export:
    """The signed workbook (``xlsx``) or its signature (``sig``, one JSON line that
    ``openssl pkeyutl -verify`` checks as a checkpoint line); the download audited.
    Raises Forbidden, NotFound, Conflict."""
    review = session.get(AccountReview, int(review_id)) if str(review_id).isdigit() else None
    if review is None:
        raise NotFound(NO_SUCH_REVIEW)
    if not (actor.can(REVIEW_ACCOUNTS) and actor.same_agency(review.agency_id)):
        from app.services.actors import MANAGE_ACCOUNTS
        from app.services.roles import REVIEW_FLAGS

        if not (actor.can(REVIEW_FLAGS) or actor.can(MANAGE_ACCOUNTS)):  # auditors and administrators: every agency's
            raise Forbidden(NOT_ALLOWED)
    if review.export_data is None:
        raise Conflict(NOT_DONE)
    name = f"account-review-{review.agency.code}-{review.period}"
    with transaction(session):
        audit.record(session, "account_review_export", object_type="AccountReview", object_id=review.id,
                     detail={"part": part}, actor=actor)  # fmt: skip
    if part == "sig":
        return Export(f"{name}.sig.json", (review.signature + "\n").encode(), "application/json")
    return Export(f"{name}.xlsx", review.export_data,
                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")  # fmt: skip


def verify_export(data: bytes, signature: str, public) -> bool:
    """Whether ``data`` is the workbook the signature line names, signed by ``public``."""
    import base64

    from cryptography.exceptions import InvalidSignature

    from app.services.audit import checkpoints

    try:
        fields = json.loads(signature)
        public.verify(base64.b64decode(fields["sig"]), checkpoints.signed_bytes(fields))
    except (ValueError, KeyError, TypeError, InvalidSignature):
        return False
    return fields.get("sha256") == hashlib.sha256(data).hexdigest()


# --- the worker's rounds ---------------------------------------------------


def report_overdue(session, actor, now: datetime.datetime | None = None) -> list[str]:
    """Tell the auditors, once, of each agency whose review of the last quarter is
    not completed; audited. Returns the agencies' codes."""
    from app.services.checkpoint_mail import recipients

    now = now or datetime.datetime.utcnow()
    period = previous_period(period_of(now))
    due = period_bounds(period)[1]
    reported = []
    with transaction(session):
        for agency in session.scalars(select(Agency).where(Agency.active.is_(True)).order_by(Agency.code)):
            # Accounts made after the quarter ended were not the quarter's to review.
            if not [u for u in _staff(session, agency.id) if u.created_on is None or u.created_on < due]:
                continue
            review = session.scalar(select(AccountReview).where(
                AccountReview.agency_id == agency.id, AccountReview.period == period))  # fmt: skip
            if review is None:
                review = AccountReview(agency_id=agency.id, period=period, due_on=period_bounds(period)[1],
                                       opened_at=now)  # fmt: skip
                session.add(review)
            if review.completed_at is not None or review.overdue_reported_at is not None:
                continue
            review.overdue_reported_at = now
            reported.append(agency.code)
            for address in recipients(session):
                outbox.enqueue(
                    session, address,
                    f"【帳號清查逾期】{agency.name} {period} / Account review overdue",
                    f"稽核人員您好：\n\n{agency.name}（{agency.code}）{period} 季之帳號清查尚未完成。\n\n"
                    f"The account review of {agency.code} for {period} is overdue.\n",
                    topic=MAIL_TOPIC_OVERDUE,
                )  # fmt: skip
            session.flush()
            audit.record(session, "account_review_overdue", object_type="AccountReview", object_id=review.id,
                         detail={"agency": agency.code, "period": period}, actor=actor)  # fmt: skip
    return reported


def _staff_accounts(session) -> list[PlatformUser]:
    users = session.scalars(select(PlatformUser).where(PlatformUser.active.is_(True)).order_by(PlatformUser.id))
    return [u for u in users if not set(_roles(u)) & set(CARD_HOLDER_ROLES)]


def dormant_round(session, actor, now: datetime.datetime | None = None, config=None) -> dict:
    """Warn by e-mail each active staff account unused for ACCOUNT_DORMANT_DAYS, and
    disable those still unused ACCOUNT_DORMANT_GRACE_DAYS after their warning (never
    the last active Admin: kept, the refusal audited); a sign-in after the warning
    cancels it. Each step audited. Returns the counts."""
    config = config or current_app.config
    now = now or datetime.datetime.utcnow()
    idle = datetime.timedelta(days=int(config["ACCOUNT_DORMANT_DAYS"]))
    grace = datetime.timedelta(days=int(config["ACCOUNT_DORMANT_GRACE_DAYS"]))
    counts = {"warned": 0, "disabled": 0, "kept": 0}
    with transaction(session):
        for user in _staff_accounts(session):
            used = user.last_login or user.created_on or now
            if user.dormant_warned_at is not None and used > user.dormant_warned_at:
                user.dormant_warned_at = None  # signed in since the warning
            if now - used < idle:
                continue
            if user.dormant_warned_at is None:
                user.dormant_warned_at = now
                counts["warned"] += 1
                if user.email:
                    outbox.enqueue(session, user.email, "【帳號即將停用】Your account will be disabled",
                                   _warning_text(user, used, now + grace), topic=MAIL_TOPIC_DORMANT)  # fmt: skip
                audit.record(session, "account_dormant_warned", object_type="User", object_id=user.id,
                             detail={"idle_days": (now - used).days}, actor=actor)  # fmt: skip
            elif now - user.dormant_warned_at >= grace:
                lock_admins(session)
                admins = active_admin_ids(session)
                if user.id in admins and not (admins - {user.id}):
                    counts["kept"] += 1
                    audit.record(session, "account_dormant_kept", object_type="User", object_id=user.id,
                                 outcome="refused", detail={"rule": "last_admin"}, actor=actor)  # fmt: skip
                    continue
                user.active = False
                counts["disabled"] += 1
                audit.record(session, "account_dormant_disabled", object_type="User", object_id=user.id,
                             detail={"idle_days": (now - used).days}, actor=actor)  # fmt: skip
    return counts


def _warning_text(user: PlatformUser, used: datetime.datetime, by: datetime.datetime) -> str:
    return (
        f"{user.username} 您好：\n\n您的帳號自 {format_roc(used.date())} 起未曾使用，依規定將於"
        f" {format_roc(by.date())} 停用；如仍需使用，請於該日前登入。\n\n"
        f"Your account {user.username} has not been used since {used:%Y-%m-%d}; it will be disabled on"
        f" {by:%Y-%m-%d} unless you sign in before then.\n"
    )

"""The query gateway: who may run which form, the purpose of every query,
input checks before any source is touched, the sections read concurrently,
masks and field-level authorisation, and the audited, verifiable record."""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import hmac
import json
import re
import time
import unicodedata
from dataclasses import dataclass, field

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, or_, select

from app.connectors import Filter, SectionSpec, SourceError, connector_for
from app.extensions import has_pending_changes, platform_bind
from app.lib import identifiers, verifycode
from app.lib.rocdate import format_roc, parse_roc, utc_midnight
from app.models.queries import BusinessItem, QueryLog
from app.services import actors, audit, formplan
from app.services.actors import Actor
from app.services.errors import Forbidden, InvalidInput, NotFound

MAX_INPUT = 200  # no input of any form is longer than this
_pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="section")


@dataclass
class QueryRun:
    """A query just run: its log row's id, verification code and outcome, and
    the result exactly as shown (the stored snapshot)."""

    id: int
    verification_code: str
    outcome: str
    snapshot: dict = field(default_factory=dict)


# --- grants ------------------------------------------------------------------


def _granted(form, who: Actor) -> bool:
    if not form.active:
        return False
    if who.can(actors.ALL_FORMS):
        return True
    agencies_ok = not form.granted_agencies or any(a.id == who.agency_id for a in form.granted_agencies)
    roles_ok = not form.granted_roles or any(r.name in who.roles for r in form.granted_roles)
    # A form granted to nobody is granted to nobody (not to everybody).
    granted_somewhere = bool(form.granted_agencies or form.granted_roles)
    return granted_somewhere and agencies_ok and roles_ok


def granted_forms(session, who: Actor) -> list:
    plans = (formplan.plan(session, code) for code in formplan.active_codes(session))
    return [p for p in plans if p is not None and _granted(p, who)]


def find_form(session, who: Actor, code: str):
    """The form's cached plan (read-only), if it exists and is granted to ``who``."""
    form = formplan.plan(session, code) if isinstance(code, str) and len(code) <= 60 else None
    if form is None or not form.active:
        raise NotFound(_l("No such query form."))
    if not _granted(form, who):
        raise Forbidden(_l("This query form is not granted to your agency or role."))
    return form


# --- inputs ------------------------------------------------------------------

_PARCEL = re.compile(r"^([0-9]{1,4})(?:-([0-9]{1,4}))?$")


def _normalise_input(inp, raw: str):
    # Chinese input methods type full-width letters and digits (Ａ１２３): fold them.
    value = unicodedata.normalize("NFKC", raw).strip()
    label = inp.label
    if len(value) > min(inp.max_length or 64, MAX_INPUT):
        raise InvalidInput(_l("%(label)s is too long."), label=label)
    if inp.type == "national_id":
        value = value.upper()
        if not identifiers.is_person_id(value):
            raise InvalidInput(
                _l("%(label)s is not a valid ID number (check the format and the check digit)."), label=label
            )
    elif inp.type == "business_number":
        if not identifiers.is_business_number(value):
            raise InvalidInput(_l("%(label)s is not a valid business number."), label=label)
    elif inp.type == "land_parcel":
        m = _PARCEL.match(value)
        if re.fullmatch(r"[0-9]{8}", value):
            pass
        elif m:
            value = f"{int(m.group(1)):04d}{int(m.group(2) or 0):04d}"
        else:
            raise InvalidInput(_l("%(label)s must be a parcel number such as 18-1 or 00180001."), label=label)
    elif inp.type == "date":
        try:
            day = (
                parse_roc(value)
                if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value)
                else datetime.date.fromisoformat(value)
            )
        except ValueError as exc:
            raise InvalidInput(_l("%(label)s is not a valid date (for example 115/11/26)."), label=label) from exc
        value = day.isoformat()
    elif inp.type == "number":
        if not re.fullmatch(r"-?[0-9]{1,15}", value):
            raise InvalidInput(_l("%(label)s must be a whole number."), label=label)
    elif inp.type == "choice":
        allowed = [line.split("|", 1)[0].strip() for line in (inp.choices or "").splitlines() if line.strip()]
        if value not in allowed:
            raise InvalidInput(_l("%(label)s: please choose one of the listed values."), label=label)
    if inp.pattern and value and not re.fullmatch(inp.pattern, value):
        raise InvalidInput(_l("%(label)s is not in the expected format."), label=label)
    return value


def validate_inputs(form, params: dict) -> dict:
    """Check and normalise every input before any source is touched."""
    if not isinstance(params, dict):
        raise InvalidInput(_l("Query parameters must be given as names and values."))
    known = {i.name for i in form.inputs}
    unknown = [k for k in params if k not in known]
    if unknown:
        raise InvalidInput(_l("This form has no input named %(name)s."), name=str(unknown[0])[:40])
    clean = {}
    for inp in form.inputs:
        raw = params.get(inp.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if inp.required:
                raise InvalidInput(_l("%(label)s is required."), label=inp.label)
            continue
        if not isinstance(raw, (str, int)):
            raise InvalidInput(_l("%(label)s must be text."), label=inp.label)
        clean[inp.name] = _normalise_input(inp, str(raw))
    return clean


def check_purpose(form, case_no, reason, business_item) -> BusinessItem:
    case_no, reason = (case_no or "").strip(), (reason or "").strip()
    if not case_no and not reason:
        raise InvalidInput(_l("Every query needs a case number or a reason."))
    if len(case_no) > 60 or len(reason) > 200:
        raise InvalidInput(_l("The case number or reason is too long."))
    if not business_item:
        raise InvalidInput(_l("Every query needs a business item."))
    item = next((b for b in form.business_items if b.code == business_item and b.active), None)
    if item is None:
        raise InvalidInput(_l("This business item is not allowed for this form."))
    return item


# --- output ------------------------------------------------------------------


def mask_value(value: str, mask: str) -> str:
    if not mask or value == "":
        return value
    if mask == "last4":
        return identifiers.mask_id(value, 4)
    if mask == "first1":
        return value[:1] + "*" * max(len(value) - 1, 0)
    if mask == "name":
        if len(value) <= 1:
            return value
        if len(value) == 2:
            return value[0] + "○"
        return value[0] + "○" * (len(value) - 2) + value[-1]
    if mask == "all":
        return "*" * 4
    return value


def format_value(value, fmt: str) -> str:
    if value is None:
        return ""
    if fmt == "roc_date":
        try:
            if isinstance(value, (datetime.date, datetime.datetime)):
                return format_roc(value if isinstance(value, datetime.date) else value.date())
            text = str(value).strip()
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", text):
                return format_roc(datetime.date.fromisoformat(text[:10]))
            return format_roc(parse_roc(text))
        except (ValueError, TypeError):
            return str(value)
    if fmt in ("number", "money", "area"):
        try:
            number = float(value)
        except (ValueError, TypeError):
            return str(value)
        if fmt == "money":
            return f"NT${number:,.0f}"
        if fmt == "area":
            return f"{number:,.2f} m²"
        return f"{number:,.0f}" if number == int(number) else f"{number:,.2f}"
    return str(value)


def _visible_columns(section, who: Actor):
    cols = []
    for col in section.columns:
        if col.agencies and not any(a.id == who.agency_id for a in col.agencies) and not who.can(actors.ALL_FORMS):
            continue  # field-level authorisation: this agency's duty does not need it
        cols.append(col)
    return cols


def _spec(section, params) -> SectionSpec:
    filters = tuple(
        Filter(column=f.column, param=f.input_name or None, op=f.op, value=f.constant) for f in section.filters
    )
    options = json.loads(section.options) if section.options else {}
    order_by = tuple(c.strip() for c in (section.order_by or "").split(",") if c.strip())
    return SectionSpec(target=section.target, filters=filters, columns=tuple(c.column for c in section.columns),
                       order_by=order_by, options=options)  # fmt: skip


def _read(config, spec, params):
    return connector_for(config).fetch(spec, params)


def _run_sections(form, who: Actor, params: dict, requester_info: dict) -> list[dict]:
    jobs = []
    for section in form.sections:
        out = {"title": section.title, "display": section.display, "columns": [], "rows": [], "error": None,
               "truncated": False, "source": section.source.name if section.source else ""}  # fmt: skip
        visible = _visible_columns(section, who)
        out["columns"] = [{"name": c.column, "label": c.label} for c in visible]
        src = section.source
        if src is None or not src.enabled:
            out["error"] = str(_l("This source is disabled by the administrator."))
            jobs.append((out, visible, None, None))
            continue
        jobs.append((out, visible, (src.config, _spec(section, params), {**params, "_requester": requester_info}),
                     src.config.timeout))  # fmt: skip
    # Every read but the last goes to the pool at once; the last runs in this
    # thread meanwhile (a form with one section, the usual case, needs no
    # hand-over; every connector keeps its source's timeout itself).
    reads = [i for i, job in enumerate(jobs) if job[2] is not None]
    for i in reads:
        out, visible, args, timeout = jobs[i]
        jobs[i] = (out, visible, _read_here(*args) if i == reads[-1] else _pool.submit(_read, *args), timeout)
    sections = []
    for out, visible, future, timeout in jobs:
        if future is not None:
            try:
                result = future.result(timeout=timeout + 1.0)
                out["rows"] = [
                    [mask_value(format_value(row.get(c.column), c.format), c.mask) for c in visible]
                    for row in result.rows
                ]
                out["truncated"] = result.truncated
            except concurrent.futures.TimeoutError:
                out["error"] = str(_l("The source did not answer in time."))
            except SourceError as exc:
                out["error"] = str(_l("The source could not answer: %(reason)s")) % {"reason": exc.message}
            except Exception as exc:  # a connector bug: show it in this section only
                out["error"] = str(_l("The source could not answer: %(reason)s")) % {"reason": type(exc).__name__}
        sections.append(out)
    return sections


def _read_here(config, spec, params) -> concurrent.futures.Future:
    """Read in this thread, keeping the outcome (rows or error) as the pool would."""
    future = concurrent.futures.Future()
    try:
        future.set_result(_read(config, spec, params))
    except Exception as exc:
        future.set_exception(exc)
    return future


# --- the record ----------------------------------------------------------------


def subject_hash(id_no: str) -> str:
    key = current_app.config["SUBJECT_HASH_KEY"].encode()
    return hmac.digest(key, id_no.upper().encode(), "sha256").hex()


def snapshot_digest(snapshot: dict) -> str:
    return hashlib.sha256(json.dumps(snapshot, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


_LOG_COLUMNS = tuple(c.key for c in QueryLog.__table__.columns if c.key != "id")


def _log_values(who: Actor, form, form_code: str, case_no, reason, business_item, params: dict,
                outcome: str, error: str | None = None) -> dict:  # fmt: skip
    """The query log row as column values (every column but the id, so the
    INSERT is the same statement each time and its compiled form is reused)."""
    values = dict.fromkeys(_LOG_COLUMNS)
    values.update(
        at=datetime.datetime.utcnow(),
        user_id=who.user_id,
        username=who.username,
        agency_code=who.agency_code,
        client_ip=who.client_ip,
        form_id=form.id if form else None,
        form_code=(form.code if form else str(form_code or ""))[:60],
        form_title=form.title if form else None,
        case_no=(case_no or "")[:60] or None,
        reason=(reason or "")[:200] or None,
        business_item=(business_item or "")[:40] or None,
        params=json.dumps(params, ensure_ascii=False)[:4000] if isinstance(params, dict) else None,
        outcome=outcome,
        error=(error or "")[:300] or None,
        row_count=0,
    )
    if form is not None and isinstance(params, dict):
        id_inputs = {i.name for i in form.inputs if i.type == "national_id"}
        subjects = sorted({subject_hash(str(v)) for k, v in params.items() if k in id_inputs and v})
        values["subjects"] = "\n".join(subjects) or None
    return values


def _refuse(session, who, form, form_code, case_no, reason, business_item, params, exc):
    entry = QueryLog(**_log_values(who, form, form_code, case_no, reason, business_item,
                                   params if isinstance(params, dict) else {}, "refused", str(exc)))  # fmt: skip
    session.add(entry)
    session.flush()
    audit.record(session, "query", object_type="QueryLog", object_id=entry.id, outcome="refused",
                 detail={"form": entry.form_code}, actor=who)  # fmt: skip
    session.commit()
    raise exc


def run_query(session, who: Actor, form_code: str, case_no: str | None, reason: str | None,
              business_item: str | None, params: dict) -> QueryRun:  # fmt: skip
    """Run one query and record it. Every refusal is recorded too.

    Raises NotFound / Forbidden (form), InvalidInput (purpose, inputs).
    """
    started = time.perf_counter()
    form = None
    try:
        form = find_form(session, who, form_code)
        item = check_purpose(form, case_no, reason, business_item)
        clean = validate_inputs(form, params)
    except (NotFound, Forbidden, InvalidInput) as exc:
        _refuse(session, who, form, form_code, case_no, reason, business_item, params, exc)
    requester_info = {"agency": who.agency_code, "user": who.username, "case_no": case_no, "reason": reason}
    sections = _run_sections(form, who, clean, requester_info)
    failed = sum(1 for s in sections if s["error"])
    outcome = "ok" if not failed else ("source_error" if failed == len(sections) else "partial")
    now = datetime.datetime.utcnow()
    snapshot = {
        "form": form.code,
        "title": form.title,
        "at": now.isoformat(timespec="seconds") + "Z",
        "agency": who.agency_name or who.agency_code,
        "user": who.username,
        "case_no": case_no or "",
        "reason": reason or "",
        "business_item": f"{item.name}（{item.code}）",
        "sections": sections,
    }
    values = _log_values(who, form, form_code, case_no, reason, business_item, clean, outcome,
                         "; ".join(s["error"] for s in sections if s["error"]) or None)  # fmt: skip
    values.update(
        at=now,
        row_count=sum(len(s["rows"]) for s in sections),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        snapshot=json.dumps(snapshot, ensure_ascii=False),
        snapshot_sha256=snapshot_digest(snapshot),
        verification_code=verifycode.new_code(),
        valid_until=now + datetime.timedelta(days=current_app.config["VERIFY_VALID_DAYS"]),
    )
    # One INSERT with everything, straight through the table: the row is never
    # read back or changed in this request, so it needs no unit of work. The
    # values go as parameters, not .values(): the statement is then the same
    # every time and SQLAlchemy reuses its compiled form.
    table = QueryLog.__table__
    detail = {"form": form.code, "rows": values["row_count"]}
    bind = platform_bind(session)
    if audit.can_write_with_event(bind) and not has_pending_changes(session):
        # PostgreSQL: the log row and its audit event in one autocommitted
        # statement (one round trip instead of BEGIN, two INSERTs and COMMIT);
        # atomic as one statement, so neither row ever exists without the other.
        new_id = audit.insert_with_event(bind, table, values, "query", object_type="QueryLog", outcome=outcome,
                                         detail=detail, actor=who)  # fmt: skip
    else:
        new_id = session.execute(insert(table).returning(table.c.id), values).scalar_one()
        audit.record(session, "query", object_type="QueryLog", object_id=new_id, outcome=outcome,
                     detail=detail, actor=who)  # fmt: skip
        session.commit()
    return QueryRun(id=new_id, verification_code=values["verification_code"], outcome=outcome, snapshot=snapshot)


# --- history and stored results -------------------------------------------------


def history(session, who: Actor, *, form_code=None, case_no=None, date_from=None, date_to=None,
            everyone=False, limit=50, offset=0) -> list[QueryLog]:  # fmt: skip
    """A user's own queries, newest first; auditors may ask for everyone's."""
    stmt = select(QueryLog).order_by(QueryLog.at.desc(), QueryLog.id.desc())
    if not (everyone and who.can(actors.READ_ALL_QUERIES)):
        stmt = stmt.where(QueryLog.user_id == who.user_id)
    if form_code:
        stmt = stmt.where(QueryLog.form_code == form_code)
    if case_no:
        stmt = stmt.where(or_(QueryLog.case_no == case_no, QueryLog.reason.contains(case_no)))
    # Days are Taipei days, as the history shows its times.
    if date_from:
        stmt = stmt.where(QueryLog.at >= utc_midnight(date_from))
    if date_to:
        stmt = stmt.where(QueryLog.at < utc_midnight(date_to + datetime.timedelta(days=1)))
    return list(session.scalars(stmt.limit(min(limit, 200)).offset(offset)))


REOPEN_WAYS = ("page", "print", "pdf", "api")


def stored_result(session, who: Actor, query_id: int, way: str = "page") -> tuple[QueryLog, dict]:
    """The stored result exactly as shown; only its author or an auditor may
    read it. Every reopening is recorded with its ``way`` (REOPEN_WAYS: on
    screen, printed, as a PDF, through the API), and so is every attempt on
    someone else's query."""
    entry = session.get(QueryLog, query_id)
    if entry is None:
        raise NotFound(_l("No such query."))
    detail = {"as": way if way in REOPEN_WAYS else "page"}
    if entry.user_id != who.user_id and not who.can(actors.READ_ALL_QUERIES):
        audit.record(session, "query_reopen", object_type="QueryLog", object_id=entry.id, outcome="refused",
                     detail=detail, actor=who)  # fmt: skip
        session.commit()
        raise Forbidden(_l("You may only reopen your own queries."))
    if not entry.snapshot:
        raise NotFound(_l("This query was refused; it has no result."))
    audit.record(session, "query_reopen", object_type="QueryLog", object_id=entry.id, detail=detail,
                 actor=who)  # fmt: skip
    session.commit()
    return entry, json.loads(entry.snapshot)


def verify_code(session, code: str) -> dict:
    """What a printout's verification code confirms, without personal data.

    Raises InvalidInput for a malformed code (typo) and NotFound for an
    unknown, expired or altered one.
    """
    canonical = verifycode.normalise(code)
    if canonical is None:
        raise InvalidInput(_l("This is not a valid verification code; please check what you typed."))
    entry = session.scalar(select(QueryLog).where(QueryLog.verification_code == canonical))
    if entry is None or not entry.snapshot:
        raise NotFound(_l("No printout carries this verification code."))
    if entry.valid_until and entry.valid_until < datetime.datetime.utcnow():
        raise NotFound(_l("This verification code has expired."))
    snapshot = json.loads(entry.snapshot)
    if snapshot_digest(snapshot) != entry.snapshot_sha256:
        raise NotFound(_l("The stored record behind this code has been altered."))
    return {
        "valid": True,
        "verification_code": canonical,
        "agency": snapshot.get("agency"),
        "form": entry.form_title,
        "issued_at": snapshot.get("at"),
        "valid_until": entry.valid_until.isoformat(timespec="seconds") + "Z" if entry.valid_until else None,
        "sha256": entry.snapshot_sha256,
    }

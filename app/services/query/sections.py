"""Reading a form's sections from their sources, concurrently, each with its own outcome.

A section whose source is disabled, slow or failing shows its error in its
own place; the others still show.
"""

from __future__ import annotations

import concurrent.futures
import json
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from app.connectors import Filter, SectionSpec, SourceError, connector_for
from app.services.actors import Actor
from app.services.query import lookup, maps
from app.services.query.output import shown_row, visible_columns

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="section")


@dataclass
class _Job:
    out: dict
    visible: list
    section: object = None
    args: tuple | None = None  # (config, spec, params) for a source to read
    timeout: float = 0.0
    future: concurrent.futures.Future | None = None
    refused: SourceError | None = None  # the operators' confinement refused the source (a security event)
    subjects: tuple = ()  # ID numbers the source named as the rows' people (never shown)
    requester: dict | None = None


def section_spec(section) -> SectionSpec:
    filters = tuple(
        Filter(column=f.column, param=f.input_name or None, op=f.op, value=f.constant) for f in section.filters
    )
    options = json.loads(section.options) if section.options else {}
    order_by = tuple(c.strip() for c in (section.order_by or "").split(",") if c.strip())
    # the grouping columns are read too, shown or not, and what a map or plan draws
    columns = tuple(
        dict.fromkeys([*(c.column for c in section.columns), *lookup.group_by(section), *maps.columns_read(section)])
    )
    return SectionSpec(
        target=section.target,
        filters=filters,
        columns=columns,
        order_by=order_by,
        options=options,
    )


def _read(config, spec, params):
    return connector_for(config).fetch(spec, params)


def _neighbours(job: _Job, rows: list[dict]) -> list[dict] | None:
    """The map's neighbour read: the target's rows that share the result's ``match``
    columns (the source's row cap applies); None without the rule or an answer
    (a refusal by the operators' confinement is kept on the job, to be audited)."""
    section = job.section
    rule = maps.neighbour_rule(section)
    if rule is None or not rows or section.source is None:
        return None
    match = [c for c in rule.get("match", []) if isinstance(c, str)]
    params = {"_requester": job.requester}
    filters = []
    for n, column in enumerate(match):
        values = sorted({str(r.get(column)) for r in rows if r.get(column) not in (None, "")})
        if not values:
            return None
        params[f"_near_{n}"] = values
        filters.append(Filter(column=column, param=f"_near_{n}", op="in"))
    _kind, setting = maps.drawing(section)
    wanted = [setting["geometry"]] + ([setting["label"]] if setting.get("label") else [])
    spec = SectionSpec(target=section.target, filters=tuple(filters), columns=tuple(dict.fromkeys(wanted)))
    try:
        return connector_for(section.source.config).fetch(spec, params).rows
    except SourceError as exc:
        if exc.rule is not None:
            job.refused = exc
        return None
    except Exception:  # the map is drawn without its neighbours (said in its notes)
        return None


def _drawn(job: _Job, rows: list[dict], truncated: bool) -> None:
    """A map or plan section's drawing data, beside its rows."""
    found = maps.drawing(job.section)
    if found is None:
        return
    if found[0] == "plan":
        job.out["plan"] = maps.plan_data(job.section, rows)
        return
    near = _neighbours(job, rows)
    job.out["map"] = maps.map_data(job.section, rows, near, truncated)
    if near is None and maps.neighbour_rule(job.section) is not None and rows:
        job.out["map"]["notes"].append(str(_l("The neighbouring parcels could not be read.")))


def _read_here(config, spec, params) -> concurrent.futures.Future:
    """Read in this thread, keeping the outcome (rows or error) as the pool would."""
    future = concurrent.futures.Future()
    try:
        future.set_result(_read(config, spec, params))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _job(section, who: Actor, params: dict, requester_info: dict, picked: bool = False, blocked: bool = False) -> _Job:
    visible = visible_columns(section, who)
    out = {
        "title": section.title,
        "display": section.display,
        "columns": [{"name": c.column, "label": c.label} for c in visible],
        "rows": [],
        "error": None,
        "truncated": False,
        "source": section.source.name if section.source else "",
    }
    src = section.source
    if src is None or not src.enabled:
        out["error"] = str(_l("This source is disabled by the administrator."))
        return _Job(out, visible, section)
    if blocked and lookup.one_property(section) is not None:
        out["error"] = str(_l("The source could not list the properties the inputs match; nothing was read."))
        return _Job(out, visible, section)
    spec = lookup.narrowed(section, section_spec(section)) if picked else section_spec(section)
    args = (src.config, spec, {**params, "_requester": requester_info})
    return _Job(out, visible, section, args, src.config.timeout, requester=requester_info)


def _collect(job: _Job) -> dict:
    out = job.out
    if job.future is None:
        return out
    try:
        result = job.future.result(timeout=job.timeout + 1.0)
        rows, groups = lookup.grouped(job.section, result.rows)
        out["rows"] = [shown_row(row, job.visible) for row in rows]
        if groups:
            out["groups"] = groups
        out["truncated"] = result.truncated
        job.subjects = tuple(result.subjects or ())
        _drawn(job, rows, result.truncated)
    except concurrent.futures.TimeoutError:
        out["error"] = str(_l("The source did not answer in time."))
    except SourceError as exc:
        out["error"] = str(_l("The source could not answer: %(reason)s")) % {"reason": str(exc.message)}
        if exc.rule is not None:
            job.refused = exc
    except Exception as exc:  # a connector bug: show it in this section only
        out["error"] = str(_l("The source could not answer: %(reason)s")) % {"reason": type(exc).__name__}
    return out


def read_sections(
    form,
    who: Actor,
    params: dict,
    requester_info: dict,
    pick: list | None = None,
    refusals: list | None = None,
    blocked: bool = False,
    subjects: set | None = None,
) -> list[dict]:
    """Every section of ``form`` as ``who`` may see it, read with the checked
    ``params``; with a ``pick``, the sections with the one-property rule read
    that property only; ``blocked`` (its candidates could not be listed), they are not read.
    ``refusals``: gets (SourceConfig, SourceError) for each source the operators'
    confinement refused (the caller audits them). ``subjects``: gets the ID numbers the
    sources named as the people of the rows read (a household's members), for the log."""
    if pick is not None:
        params = {**params, **lookup.pick_params(pick)}
    jobs = [_job(section, who, params, requester_info, pick is not None, blocked) for section in form.sections]
    # Every read but the last goes to the pool at once; the last runs in this
    # thread meanwhile (a form with one section, the usual case, needs no
    # hand-over; every connector keeps its source's timeout itself).
    reads = [job for job in jobs if job.args is not None]
    for job in reads:
        job.future = _read_here(*job.args) if job is reads[-1] else _pool.submit(_read, *job.args)
    sections = [_collect(job) for job in jobs]
    if refusals is not None:
        refusals.extend((job.section.source.config, job.refused) for job in jobs if job.refused is not None)
    if subjects is not None:
        subjects.update(s for job in jobs for s in job.subjects)
    return sections


def read_candidates(form, params: dict, requester_info: dict, refusals: list | None = None) -> dict | None:
    """The properties the inputs match, by the form's one-property rule (None: no rule or no answer;
    ``refusals`` as for ``read_sections``)."""
    section = lookup.rule_section(form)
    if section is None:
        return None
    return lookup.candidates(section, section_spec(section), {**params, "_requester": requester_info}, refusals)

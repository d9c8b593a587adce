"""Cached, read-only plans of query forms.

Running a query needs the whole form definition (grants, inputs, sections,
filters, columns, sources): about a dozen lazy loads. A plan is built once per
process and reused until the configuration generation changes; the
generation is bumped in the same transaction as any change to forms, sources
or business items (``install_generation_hook``). The process that made the
edit sees it on its next query; other processes read the generation at most
every FORM_PLAN_CHECK_SECONDS (one round trip saved on every query).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import event, select, update
from sqlalchemy.orm import selectinload

from app.extensions import platform_bind
from app.lib.ttlcache import TTLCache
from app.models.org import Agency
from app.models.queries import (
    BusinessItem,
    ConfigGeneration,
    FormInput,
    FormSection,
    QueryForm,
    SectionColumn,
    SectionFilter,
)
from app.models.sources import DataSource
from app.services.errors import InvalidInput

CONFIG_MODELS = (QueryForm, FormInput, FormSection, SectionFilter, SectionColumn, BusinessItem, DataSource, Agency)

# Per database (one process may serve several apps, as the tests do):
# plans by form code with their generation, and the generation last read.
_cache: dict[tuple[int, str], tuple[int, SimpleNamespace | None]] = {}
_lock = threading.Lock()
_generations = TTLCache()


def _db_key(session) -> int:
    return id(platform_bind(session))


def generation(session, key: int) -> int:
    """The configuration generation of the database ``key`` (``_db_key``), read
    from it at most every FORM_PLAN_CHECK_SECONDS per process."""
    return _generations.get(
        key,
        current_app.config.get("FORM_PLAN_CHECK_SECONDS", 1.0),
        lambda: session.scalar(select(ConfigGeneration.value).where(ConfigGeneration.id == 1)) or 0,
    )


def _bump(session, flush_context, instances) -> None:
    touched = any(isinstance(o, CONFIG_MODELS) for o in (*session.new, *session.dirty, *session.deleted))
    if touched:
        session.execute(
            update(ConfigGeneration).where(ConfigGeneration.id == 1).values(value=ConfigGeneration.value + 1)
        )
        session.info["config_bumped"] = True


def _after_commit(session) -> None:
    if session.info.pop("config_bumped", False):
        _generations.forget(_db_key(session))  # this process made the edit: read the new generation next query


def install_generation_hook(session) -> None:
    if not event.contains(session, "before_flush", _bump):
        event.listen(session, "before_flush", _bump)
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", lambda s, _tx: s.info.pop("config_bumped", None))


def _ns(**kw) -> SimpleNamespace:
    return SimpleNamespace(**kw)


def _build(session, code: str) -> SimpleNamespace | None:
    form = session.scalar(
        select(QueryForm)
        .where(QueryForm.code == code)
        .options(
            selectinload(QueryForm.granted_agencies),
            selectinload(QueryForm.granted_roles),
            selectinload(QueryForm.business_items).selectinload(BusinessItem.agency),
            selectinload(QueryForm.inputs),
            selectinload(QueryForm.sections).selectinload(FormSection.source),
            selectinload(QueryForm.sections).selectinload(FormSection.filters),
            selectinload(QueryForm.sections).selectinload(FormSection.columns).selectinload(SectionColumn.agencies),
        )
    )
    if form is None:
        return None
    return form_plan(session, form)


def form_plan(session, form) -> SimpleNamespace:
    """The read-only plan of a form record, stored or not (the designer's "try it" runs a draft)."""
    from app.services.sources import source_config

    sections = []
    lists = _section_lists(session, form)
    for s in form.sections:
        src = s.source
        sections.append(
            _ns(
                title=s.title,
                display=s.display,
                target=s.target,
                order_by=s.order_by,
                options=s.options,
                source=_ns(name=src.name, enabled=bool(src.enabled), config=source_config(src))
                if src is not None
                else None,
                filters=[
                    _ns(column=f.column, op=f.op, input_name=f.input_name, constant=f.constant) for f in s.filters
                ],
                columns=[
                    _ns(
                        column=c.column,
                        label=c.label,
                        mask=c.mask or "",
                        format=c.format or "",
                        agencies=[_ns(id=a.id) for a in c.agencies],
                    )
                    for c in s.columns
                ],
            )
        )
    return _ns(
        id=form.id,
        code=form.code,
        title=form.title,
        description=form.description,
        active=bool(form.active),
        granted_agencies=[_ns(id=a.id) for a in form.granted_agencies],
        granted_roles=[_ns(name=r.name) for r in form.granted_roles],
        business_items=[
            _ns(code=b.code, name=b.name, active=bool(b.active), agency=b.agency.code if b.agency else None)
            for b in form.business_items
        ],
        inputs=[
            _ns(
                name=i.name,
                label=i.label,
                type=i.type,
                required=bool(i.required),
                pattern=i.pattern,
                choices=i.choices,
                max_length=i.max_length,
                help_text=i.help_text,
                section_list=lists.get(i.name),
            )
            for i in form.inputs
        ],
        sections=sections,
    )


def _section_lists(session, form) -> dict:
    """Per land_section input, where its list of sections is read (lookup.sections_of)."""
    from app.services.query.lookup import section_list_setting
    from app.services.sources import source_config

    lists = {}
    for i in form.inputs:
        if i.type != "land_section":
            continue
        try:
            setting = section_list_setting(i.choices)
        except InvalidInput:
            continue
        src = session.scalar(select(DataSource).where(DataSource.code == setting["source"]))
        config = source_config(src) if src is not None and src.enabled else None
        lists[i.name] = _ns(config=config, target=setting["target"].strip(), columns=setting.get("columns", {}))
    return lists


def plan(session, code: str) -> SimpleNamespace | None:
    """The form's plan, or None when no such form exists."""
    db_key = _db_key(session)
    gen = generation(session, db_key)
    key = (db_key, code)
    with _lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == gen:
        return cached[1]
    built = _build(session, code)
    with _lock:
        _cache[key] = (gen, built)
    return built


def active_codes(session) -> list[str]:
    return list(
        session.scalars(
            select(QueryForm.code).where(QueryForm.active.is_(True)).order_by(QueryForm.sort_order, QueryForm.id)
        )
    )


def clear() -> None:
    with _lock:
        _cache.clear()
    _generations.clear()

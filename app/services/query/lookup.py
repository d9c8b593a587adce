"""Property lookups (地號, 建號) as designers configure them, without code.

Three pieces, each configuration:

- the input type ``land_section``: the section (段 and 小段) picked from the
  source's list of sections or typed as its code. The input's ``choices`` is
  the JSON ``{"source": "LAND-DB", "target": "v_land_section"}`` (optional
  ``"columns"``: ``{"code", "name", "sub", "district"}`` naming the list's
  columns; defaults section_code, section_name, subsection_name, district).
  The value becomes the comma-separated codes of the sections it names, for a
  filter ``section_code in <input>``: a code or 段 with 小段 names one, a 段
  alone names all its 小段, and an optional input left empty every section.
- a section option ``"group_by": [columns]``: the rows are shown grouped
  under each value of those columns (each parcel's owners under it).
- a section option ``"one_property": {"key": [columns], "show": [columns]}``:
  when the key columns of what the input matches name more than one property,
  the run answers with the candidates (the ``show`` columns of each, as the
  section formats them: section, number, township; never owners) and nothing
  else is read; the clerk's pick (the key's values) narrows every section
  that has the rule. The candidate listing reads the register, so it is
  recorded like a query: a query log row with outcome ``candidates`` (its
  listing stored as shown, no verification code, nothing to print) and its
  ``query`` audit event.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, replace

from flask import current_app
from flask_babel import lazy_gettext as _l

from app.connectors import Filter, SectionSpec, SourceError, connector_for
from app.lib.ttlcache import TTLCache
from app.services.errors import InvalidInput
from app.services.query.output import format_value, mask_value

SECTION_COLUMNS = {"code": "section_code", "name": "section_name", "sub": "subsection_name", "district": "district"}
MAX_CANDIDATES = 50
PICK_PARAM = "_pick_{}"
_sections = TTLCache(max_entries=200)


@dataclass(frozen=True)
class LandSection:
    code: str
    name: str
    sub: str
    district: str

    @property
    def label(self) -> str:
        return f"{self.name}{self.sub}（{self.district}）" if self.district else f"{self.name}{self.sub}"


def section_list_setting(choices: str | None) -> dict:
    """The land_section input's list setting, checked; raises InvalidInput."""
    try:
        setting = json.loads(choices or "")
    except ValueError:
        setting = None
    if (
        not isinstance(setting, dict)
        or not isinstance(setting.get("source"), str)
        or not isinstance(setting.get("target"), str)
        or not setting["target"].strip()
        or not isinstance(setting.get("columns", {}), dict)
        or any(k not in SECTION_COLUMNS or not isinstance(v, str) for k, v in setting.get("columns", {}).items())
    ):
        raise InvalidInput(
            _l('A section input needs its list of sections: {"source": "<source code>", "target": "<view>"}.')
        )
    return setting


def sections_of(inp) -> list[LandSection]:
    """The sections of the source named by a land_section input (its plan's
    ``section_list``: source config, target, columns), read at most every
    FORM_SECTION_LIST_SECONDS per process. Raises InvalidInput when unreadable."""
    spec = getattr(inp, "section_list", None)
    if spec is None or spec.config is None:
        raise InvalidInput(_l("%(label)s: the list of sections is not available."), label=inp.label)
    cols = {**SECTION_COLUMNS, **spec.columns}
    key = (spec.config.fingerprint(), spec.target, tuple(sorted(cols.items())))

    def read():
        wanted = (cols["code"], cols["name"], cols["sub"], cols["district"])
        try:
            result = connector_for(spec.config).fetch(SectionSpec(target=spec.target, columns=wanted), {})
        except SourceError:
            return None
        found = {}
        for row in result.rows:
            code = str(row.get(cols["code"]) or "").strip()
            if code:
                found[code] = LandSection(
                    code, *(str(row.get(cols[k]) or "").strip() for k in ("name", "sub", "district"))
                )
        return sorted(found.values(), key=lambda s: s.code) or None

    listed = _sections.get(key, current_app.config.get("FORM_SECTION_LIST_SECONDS", 300.0), read)
    if not listed:
        raise InvalidInput(_l("%(label)s: the list of sections could not be read; try again later."), label=inp.label)
    return listed


def section_choices(inp) -> list[tuple[str, str]]:
    """What the page offers: each section by code, and each 段 with several 小段 alone."""
    try:
        listed = sections_of(inp)
    except InvalidInput:
        return []
    out = [(s.code, s.label) for s in listed]
    names = {}
    for s in listed:
        names.setdefault(s.name, []).append(s)
    out += [(name, f"{name}（{_l('all its subsections')}）") for name, group in names.items() if len(group) > 1]
    return out


def _fold(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def land_section(inp, value: str) -> str:
    """The codes of the sections ``value`` names (a code, 段 and 小段, or a 段 alone)."""
    listed = sections_of(inp)
    if value == "":
        return ",".join(s.code for s in listed)
    typed = _fold(value)
    named = [s for s in listed if s.code.upper() == typed.upper()]
    named = named or [s for s in listed if _fold(s.name + s.sub) == typed]
    named = named or [s for s in listed if _fold(s.name) == typed]
    if not named:
        raise InvalidInput(_l("%(label)s: no such section; pick one from the list or type its code."), label=inp.label)
    return ",".join(s.code for s in named)


# --- the one-property rule -----------------------------------------------------------


def _options(section) -> dict:
    try:
        options = json.loads(section.options) if section.options else {}
    except ValueError:
        options = {}
    return options if isinstance(options, dict) else {}


def one_property(section) -> dict | None:
    rule = _options(section).get("one_property")
    return rule if isinstance(rule, dict) and rule.get("key") else None


def group_by(section) -> list[str]:
    cols = _options(section).get("group_by")
    return [c for c in cols if isinstance(c, str)] if isinstance(cols, list) else []


def check_rule_options(options: dict) -> None:
    """A designer's ``group_by`` / ``one_property`` options; raises InvalidInput."""
    column = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")

    def columns(value, allow_empty=False) -> bool:
        return (
            isinstance(value, list)
            and (allow_empty or bool(value))
            and all(isinstance(c, str) and column.match(c) for c in value)
        )

    if "group_by" in options and not columns(options["group_by"]):
        raise InvalidInput(_l('"group_by" must list the columns to group the rows by.'))
    rule = options.get("one_property")
    if rule is not None and (
        not isinstance(rule, dict) or not columns(rule.get("key")) or not columns(rule.get("show", []), True)
    ):
        raise InvalidInput(_l('"one_property" needs "key" (the columns naming a property) and "show" (columns).'))


def rule_section(form):
    return next((s for s in form.sections if one_property(s) is not None), None)


def check_pick(form, pick) -> list[str] | None:
    """The clerk's pick: one value per key column of the form's rule; raises InvalidInput."""
    if pick is None:
        return None
    section = rule_section(form)
    if section is None:
        raise InvalidInput(_l("This form has no candidates to pick from."))
    key = one_property(section)["key"]
    if (
        not isinstance(pick, list)
        or len(pick) != len(key)
        or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in pick)
    ):
        raise InvalidInput(_l("The pick does not name one of the candidates; run the query again and pick one."))
    return pick


def narrowed(section, spec: SectionSpec) -> SectionSpec:
    """A section with the rule, read for the picked property only."""
    rule = one_property(section)
    if rule is None:
        return spec
    extra = tuple(Filter(column=c, param=PICK_PARAM.format(n), op="eq") for n, c in enumerate(rule["key"]))
    return replace(spec, filters=spec.filters + extra)


def pick_params(pick: list[str]) -> dict:
    return {PICK_PARAM.format(n): v for n, v in enumerate(pick)}


def candidates(section, spec: SectionSpec, params: dict, refusals: list | None = None) -> dict | None:
    """The properties the input matches, read from the rule's section: key and
    ``show`` columns only (formatted and masked as the section shows them).
    None when the source cannot answer (the sections with the rule then say
    so); a confinement refusal goes into ``refusals`` (the caller audits it)."""
    rule = one_property(section)
    key, show = list(rule["key"]), [c for c in rule.get("show", []) if isinstance(c, str)]
    by_name = {c.column: c for c in section.columns}
    wanted = tuple(dict.fromkeys(key + show))
    src = section.source
    if src is None or not src.enabled:
        return None
    try:
        result = connector_for(src.config).fetch(replace(spec, columns=wanted, order_by=tuple(key)), params)
    except SourceError as exc:
        if exc.rule is not None and refusals is not None:
            refusals.append((src.config, exc))
        return None
    except Exception:  # a connector bug: the sections with the rule say the listing failed
        return None
    seen, rows = set(), []
    for row in result.rows:
        pick = tuple(str(row.get(c) if row.get(c) is not None else "") for c in key)
        if pick in seen:
            continue
        seen.add(pick)
        values = []
        for c in show:
            col = by_name.get(c)
            values.append(mask_value(format_value(row.get(c), col.format), col.mask) if col else str(row.get(c) or ""))
        rows.append({"pick": list(pick), "values": values})
    return {
        "title": section.title,
        "columns": [by_name[c].label if c in by_name else c for c in show],
        "rows": rows[:MAX_CANDIDATES],
        "truncated": len(rows) > MAX_CANDIDATES or result.truncated,
    }


def grouped(section, raw_rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """The rows in groups (first appearance order, the source's order within),
    and each group's title and row count; no groups without ``group_by``."""
    cols = group_by(section)
    if not cols:
        return raw_rows, []
    by_name = {c.column: c for c in section.columns}
    order: dict[str, list[dict]] = {}
    for row in raw_rows:
        parts = [format_value(row.get(c), by_name[c].format if c in by_name else "") for c in cols]
        title = ""
        for part in parts:
            if part:
                title += (" " if title and part[:1].isdigit() else "") + part
        order.setdefault(title, []).append(row)
    rows = [row for group in order.values() for row in group]
    return rows, [{"title": t, "count": len(g)} for t, g in order.items()]

"""The query capability (免書證查詢): who may run which form, the purpose of
every query, input checks before any source is touched, the sections read
concurrently, masks and field-level authorisation, and the audited,
verifiable record.

Commands (each owns its transaction, ``app.services.command``):

- ``run_query`` (``run``): run one query (or list the properties its inputs match), or record its refusal;
- ``stored_result`` (``history``): reopen a stored result, audited with how it is shown;
- ``history`` / ``verify_code`` (``history``): reads that change nothing.

Modules: ``grants`` (who may run which form), ``inputs`` (input types and
the purpose), ``sections`` (reading the sources), ``output`` (masks and
formats), ``lookup`` (section lists, grouping, the one-property rule), ``record`` (the query log and its audit event), ``plan`` (cached
form plans), ``design`` (the designers' rules for forms).
"""

from app.lib import verifycode
from app.services.query.grants import find_form, granted, granted_forms
from app.services.query.history import (
    MAX_HISTORY,
    REOPEN_WAYS,
    CodeCheck,
    check_code,
    history,
    may_read_everyones,
    stored_result,
    verify_code,
)
from app.services.query.inputs import (
    INPUT_TYPES,
    MAX_INPUT,
    check_purpose,
    normalise_input,
    offered_items,
    validate_inputs,
)
from app.services.query.lookup import section_choices as _section_choices
from app.services.query.output import format_value, mask_value
from app.services.query.record import snapshot_digest, subject_hash
from app.services.query.run import QueryRun, run_query


def section_choices(form) -> dict:
    """Per land_section input of a form's plan, the sections the page offers."""
    return {i.name: _section_choices(i) for i in form.inputs if i.type == "land_section"}


__all__ = [
    "INPUT_TYPES",
    "MAX_HISTORY",
    "MAX_INPUT",
    "REOPEN_WAYS",
    "CodeCheck",
    "QueryRun",
    "check_code",
    "check_purpose",
    "offered_items",
    "find_form",
    "format_value",
    "granted",
    "granted_forms",
    "history",
    "mask_value",
    "may_read_everyones",
    "normalise_input",
    "run_query",
    "section_choices",
    "snapshot_digest",
    "stored_result",
    "subject_hash",
    "validate_inputs",
    "verify_code",
    "verifycode",
]

"""Cross-agency notification cases, one command per business operation.

    registration  register_case (with the case number and the input checks)
    lookup        look_up_citizen (name and address from the household register, audited
                  as a query for the case being registered)
    fields        the categories' structured fields, checked
    dispatches    open_dispatch (records the receiving agency's receipt), act
    workflow      the dispatch workflow as a table, and ``apply``
    cases         view_case, cases_about_citizen
    worklists     worklist, handlers_of
    search        search_cases, search_categories (case search within what each may see)
    downloads     check_attachment, download_attachment
    signatures    check_signature (an online application's card signature, checked now)
    categories    list_categories, usable_categories, validate_category
    mails         the stage e-mails, validate_template
    results       what a viewer may see of a case, as plain result objects
    attachments   checking, sealing and stamping uploaded files

Each command takes the actor and validated input, checks permission (the
actor's capabilities and agency), owns its transaction (commit, or roll back
whole) with its audit event and outbox mail inside, and returns a result
shaped for that viewer.
"""

from app.services.notify.cases import cases_about_citizen, view_case
from app.services.notify.categories import (
    list_categories,
    registration_form,
    usable_categories,
    validate_category,
    validate_category_attachment,
    validate_category_field,
)
from app.services.notify.dispatches import Action, act, open_dispatch
from app.services.notify.downloads import COPIES, check_attachment, download_attachment
from app.services.notify.lookup import CitizenFound, look_up_citizen
from app.services.notify.mails import CONTROL_LABELS, DEFAULT_TEMPLATES, validate_template
from app.services.notify.registration import CONTACT_WAYS, CaseDraft, Citizen, Upload, next_case_no, register_case
from app.services.notify.search import (
    CASE_STATUSES,
    Criteria,
    SearchPage,
    search_cases,
    search_categories,
    searches_by_citizen,
)
from app.services.notify.signatures import SignatureCheck, check_signature
from app.services.notify.worklists import BOXES, boxes_of, handlers_of, page_number, worklist

__all__ = [
    "BOXES",
    "CASE_STATUSES",
    "Criteria",
    "SearchPage",
    "CONTACT_WAYS",
    "CitizenFound",
    "look_up_citizen",
    "CONTROL_LABELS",
    "COPIES",
    "DEFAULT_TEMPLATES",
    "Action",
    "CaseDraft",
    "SignatureCheck",
    "Citizen",
    "Upload",
    "act",
    "boxes_of",
    "cases_about_citizen",
    "check_attachment",
    "check_signature",
    "download_attachment",
    "handlers_of",
    "list_categories",
    "next_case_no",
    "open_dispatch",
    "page_number",
    "register_case",
    "search_cases",
    "search_categories",
    "searches_by_citizen",
    "registration_form",
    "usable_categories",
    "validate_category",
    "validate_category_attachment",
    "validate_category_field",
    "validate_template",
    "view_case",
    "worklist",
]

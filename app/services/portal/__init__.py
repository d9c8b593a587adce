"""The citizens' and businesses' portal: who am I (by the card bound to the
account), my cases and withdrawing an application (``cases``), who read my data
and the "I don't recognise this" flags the querying agency's Auditor answers
(``accesses``); applying online with a card-signed application (``applications``).
Each operation is one command; every read of personal data is audited, and a case
number or entry that is not the person's is a 404, audited."""

from app.services.portal import applications
from app.services.portal.accesses import (
    AccessEntry,
    AccessPage,
    FlagReview,
    answer_flag,
    flag_access,
    get_access,
    list_accesses,
    list_flags,
    open_flag_count,
)
from app.services.portal.cases import MyCase, get_case, list_cases, set_mail_stages, withdraw
from app.services.portal.person import PORTAL, REVIEW_FLAGS, Person, person_of

__all__ = [
    "PORTAL", "REVIEW_FLAGS", "applications", "AccessEntry", "AccessPage", "FlagReview", "MyCase", "Person",
    "answer_flag", "flag_access", "get_access", "get_case", "list_accesses", "list_cases", "list_flags",
    "open_flag_count", "person_of", "set_mail_stages", "withdraw",
]  # fmt: skip

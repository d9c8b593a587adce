"""Who the portal's visitor is: the citizen's bound ID (as its keyed hash) or the
business's number, read from the card bound to the account, never from the request."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.cards import CardBinding
from app.services.actors import Actor
from app.services.errors import Forbidden
from app.services.query.record import subject_hash
from app.services.roles import PORTAL, REVIEW_FLAGS  # noqa: F401 (re-exported)

NOT_PORTAL = _l("The portal is for citizens and businesses signed in with their certificate card.")


@dataclass(frozen=True)
class Person:
    kind: str  # citizen | business | organisation
    subject: str | None  # the keyed hash the query log and the cases keep (None: no subject)
    business_no: str | None = None


def person_of(session, actor: Actor) -> Person:
    """The visitor as a data subject. Raises Forbidden for anyone but a card holder."""
    if not actor.signed_in or not actor.can(PORTAL):
        raise Forbidden(NOT_PORTAL)
    binding = session.execute(
        select(CardBinding.kind, CardBinding.subject_hash, CardBinding.business_no)
        .where(CardBinding.user_id == actor.user_id, CardBinding.kind.in_(("citizen", "business", "organisation")))
        .order_by(CardBinding.id.desc())
        .limit(1)
    ).first()
    if binding is None:
        raise Forbidden(NOT_PORTAL)
    if binding.kind == "citizen":
        return Person("citizen", binding.subject_hash)
    if binding.kind == "business" and binding.business_no:
        return Person("business", subject_hash(binding.business_no), binding.business_no)
    return Person(binding.kind, None)

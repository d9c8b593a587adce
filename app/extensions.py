"""Extensions, created once and bound to the app in create_app().

AppBuilder is made per app inside create_app(): it keeps its views on the
instance, so one shared instance would register every view twice when the
tests build a second app (SQLite, then PostgreSQL).
"""

from flask_appbuilder.utils.legacy import get_sqla_class
from flask_mail import Mail
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

db = get_sqla_class()()
migrate = Migrate()
mail = Mail()
csrf = CSRFProtect()


def platform_bind(session):
    """The engine ``session`` reads and writes. For the application's scoped
    session that is Flask-SQLAlchemy's default engine (its ``get_bind`` answers
    the same when given no model), found without opening the request's
    session just to ask."""
    if session is db.session:
        return db.engine
    return session.get_bind()


def has_pending_changes(session) -> bool:
    """Whether ``session`` holds objects to flush; a scoped session not yet
    opened in this request holds none (and is not opened to tell)."""
    registry = getattr(session, "registry", None)
    if registry is not None and not registry.has():
        return False
    return bool(session.new or session.dirty or session.deleted)

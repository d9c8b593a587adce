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

"""The landing page: what the signed-in user can do."""

from flask import g, redirect, url_for
from flask_appbuilder import IndexView, expose

from app.extensions import db
from app.services import portal
from app.services.roles import PORTAL
from app.web import current_actor


class HomeView(IndexView):
    index_template = "home.html"

    @expose("/")
    def index(self):
        actor = current_actor()
        if actor.can(PORTAL):  # citizens and businesses: their own portal
            return redirect(url_for("PortalView.index"))
        user = g.user if getattr(g, "user", None) is not None and g.user.is_authenticated else None
        # an Auditor's work list: the people's flags on the agency's queries waiting for an answer
        open_flags = portal.open_flag_count(db.session, actor) if user is not None else None
        return self.render_template(self.index_template, appbuilder=self.appbuilder, user=user, open_flags=open_flags)

"""The landing page: what the signed-in user can do."""

from flask import g, redirect, url_for
from flask_appbuilder import IndexView, expose

from app.services.roles import PORTAL
from app.web import current_actor


class HomeView(IndexView):
    index_template = "home.html"

    @expose("/")
    def index(self):
        if current_actor().can(PORTAL):  # citizens and businesses: their own portal
            return redirect(url_for("PortalView.index"))
        user = g.user if getattr(g, "user", None) is not None and g.user.is_authenticated else None
        return self.render_template(self.index_template, appbuilder=self.appbuilder, user=user)

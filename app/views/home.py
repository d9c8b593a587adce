"""The landing page: what the signed-in user can do."""

from flask import g, redirect, url_for
from flask_appbuilder import IndexView, expose

from app.extensions import db
from app.services import home
from app.services.roles import PORTAL
from app.web import current_actor

# Where each thing that waits is listed (endpoint, arguments).
LINKS = {
    "assign": ("NotifyView.index", {"tab": "incoming"}),
    "review": ("NotifyView.index", {"tab": "incoming"}),
    "overdue": ("NotifyView.index", {"tab": "incoming"}),
    "accept": ("NotifyView.index", {"tab": "work"}),
    "record": ("NotifyView.index", {"tab": "work"}),
    "cases": ("NotifyView.index", {"tab": "cases"}),
    "cases_overdue": ("NotifyView.index", {"tab": "cases"}),
    "transfers": ("TransferView.index", {"tab": "incoming"}),
    "transfer_results": ("TransferView.index", {"tab": "completed"}),
    "certificates": ("TransferView.certificates", {}),
    "flags": ("AccessFlagView.index", {}),
    "anomalies": ("AnomalyFlagView.index", {}),
    "sources": ("DataSourceView.list", {}),
}


class HomeView(IndexView):
    index_template = "home.html"

    @expose("/")
    def index(self):
        actor = current_actor()
        if actor.can(PORTAL):  # citizens and businesses: their own portal
            return redirect(url_for("PortalView.index"))
        user = g.user if getattr(g, "user", None) is not None and g.user.is_authenticated else None
        waiting = []
        if user is not None:  # what waits for me, each linked to its list
            for item in home.todo(db.session, actor):
                endpoint, args = LINKS[item.key]
                waiting.append({"item": item, "url": url_for(endpoint, **args)})
        return self.render_template(self.index_template, appbuilder=self.appbuilder, user=user, waiting=waiting)

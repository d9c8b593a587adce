"""Thin FAB views and APIs; the rules live in app.services."""


def register_views(appbuilder) -> None:
    from app.views import audit, org, outbox

    org.register(appbuilder)
    audit.register(appbuilder)
    outbox.register(appbuilder)

"""Thin FAB views and APIs; the rules live in app.services."""


def register_views(appbuilder) -> None:
    from app.views import (
        account_review,
        anomaly,
        audit,
        cards,
        forms,
        health,
        notify,
        notify_admin,
        notify_api,
        openapi,
        org,
        outbox,
        payments,
        portal,
        portal_apply,
        query,
        reports,
        sources,
        survey,
        transfer,
        transfer_admin,
        transfer_api,
    )

    query.register(appbuilder)
    notify_api.register(appbuilder)
    notify.register(appbuilder)
    notify_admin.register(appbuilder)
    transfer.register(appbuilder)
    transfer_api.register(appbuilder)
    forms.register(appbuilder)
    sources.register(appbuilder)
    transfer_admin.register(appbuilder)
    org.register(appbuilder)
    audit.register(appbuilder)
    account_review.register(appbuilder)
    outbox.register(appbuilder)
    survey.register(appbuilder)
    reports.register(appbuilder)
    cards.register(appbuilder)
    portal.register(appbuilder)
    anomaly.register(appbuilder)
    payments.register(appbuilder)
    portal_apply.register(appbuilder)
    openapi.register(appbuilder)
    health.register(appbuilder)

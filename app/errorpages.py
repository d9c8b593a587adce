"""The pages a browser gets for an error (400, 403, 404, 405, 413, 429, 500,
503...): in the reader's language, in the platform's layout (the portal's
under /portal/), with a way back. API paths answer JSON (app.web)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, render_template, request
from flask_babel import lazy_gettext as _l

TITLES = {
    400: _l("The request could not be understood"),
    401: _l("Please sign in"),
    403: _l("You may not open this page"),
    404: _l("Page not found"),
    405: _l("This page does not accept that kind of request"),
    409: _l("The request conflicts with the current state"),
    413: _l("The upload is too large"),
    429: _l("Too many requests"),
    500: _l("Something went wrong on the platform"),
    503: _l("The platform is unavailable at the moment"),
}
MESSAGES = {
    400: _l("Something in the request was not valid. Nothing was changed; please go back and try again."),
    401: _l("This page is for signed-in users. Please sign in and try again."),
    403: _l("Your account's roles do not include this page. If you need it, ask your agency's administrator."),
    404: _l("There is no page at this address. It may have moved, or the link may be mistyped."),
    405: _l("This page cannot be used that way. Please go back and use the page's own buttons."),
    409: _l("The request could not be carried out in the current state. Nothing was changed."),
    413: _l("The file or form sent is larger than the platform accepts. Nothing was stored."),
    429: _l("Too many requests in a short time. Please wait a moment and try again."),
    500: _l("The platform could not finish the request, and nothing was changed. The fault was recorded."),
    503: _l("The platform cannot answer at the moment. Please try again later; nothing was changed."),
}


def _back() -> str | None:
    """The page the reader came from, when it is one of ours (never another site's address)."""
    referrer = request.referrer
    if not referrer:
        return None
    here, there = urlsplit(request.host_url), urlsplit(referrer)
    if (there.scheme, there.netloc) != (here.scheme, here.netloc) or there.path == request.path:
        return None
    return referrer


def page(code: int, message=None):
    """The error page for ``code`` (``message`` instead of the standard one), as a response tuple."""
    title = TITLES.get(code) or TITLES[500 if code >= 500 else 400]
    text = message if message is not None else (MESSAGES.get(code) or MESSAGES[500 if code >= 500 else 400])
    portal = request.path.startswith("/portal/")
    context = {"code": code, "title": str(title), "message": str(text), "back": _back()}
    try:
        if portal:
            context.update(layout="portal/base.html", home="/")  # / takes each reader to their own start
        else:
            appbuilder = current_app.appbuilder
            context.update(
                layout=appbuilder.base_template, appbuilder=appbuilder, base_template=appbuilder.base_template,
                home=appbuilder.get_url_for_index,
            )  # fmt: skip
        return render_template("errors/page.html", **context), code
    except Exception as exc:  # the layout needs the database (menu, user): say it plainly without it
        current_app.logger.warning("error page without layout (%s): %s", code, type(exc).__name__)
        context["home"] = "/"
        return render_template("errors/plain.html", **context), code

"""The reports' resources as marshmallow schemas: what the report pages take
from their query string (the filters, the report, the questionnaire, the week).
Dates stay text here (ROC dates such as 115/11/01, read by
app.services.reports.filters, which explains a wrong one in words); ids are
digits. Any other parameter is refused."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields, validate

#: what the pages say when their query string fails these schemas
INVALID_QUERY = _l("The report's parameters are not valid; choose them with the form.")
DATE = validate.Length(max=20)
ID = validate.Regexp(r"^\d{0,9}$", error="Not an id.")
KEY = validate.Length(max=40)


def _text(validator) -> fields.String:
    return fields.String(validate=validator, load_default="")


FILTERS = {"from": _text(DATE), "to": _text(DATE), "agency": _text(ID), "category": _text(ID)}

#: /reports/ and its exports: the filters and which report
ReportQuerySchema = Schema.from_dict({**FILTERS, "report": _text(KEY)}, name="ReportQuerySchema")
#: /survey-stats/: the filters and which questionnaire version
SurveyStatsQuerySchema = Schema.from_dict({**FILTERS, "questionnaire": _text(ID)}, name="SurveyStatsQuerySchema")
#: /reports/weekly-queries/: any day of the week and the agency's code
WeeklyQuerySchema = Schema.from_dict({"week": _text(DATE), "agency": _text(KEY)}, name="WeeklyQuerySchema")

"""A throwaway kind of data source, dropped into the connectors' package as
one module, to show that a new kind touches no other file.

The module declares everything a kind has: its kind and label, its settings
schema (the connection field it uses and its own typed options), ``test()``,
``describe()`` (what its options say the inbox is) and ``fetch()`` (as many
pages as its options say). ``fax_kind`` installs it for one test and takes it
away again.
"""

from __future__ import annotations

import sys

import pytest

FAX_KIND = """
from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, fields, validate

from app.connectors.base import Connector, Entity, Field, SettingsSchema, SourceError, register, text


class FaxOptions(Schema):
    class Meta:
        unknown = RAISE

    inbox = text(40, load_default="inbox")
    pages = fields.Integer(strict=True, validate=validate.Range(min=1, max=50), load_default=1)


class FaxSettings(SettingsSchema):
    url = text(100, required=True)
    options = fields.Nested(FaxOptions, load_default=dict)


@register("fax")
class FaxConnector(Connector):
    label = _l("Fax gateway")
    order = 99
    settings_schema = FaxSettings

    def test(self):
        return 0.0

    def describe(self):
        columns = (Field("page", "integer"), Field("inbox"), Field("from_no"))
        return [Entity(target=self.options["inbox"], kind="resource", label=self.settings["url"], columns=columns)]

    def fetch(self, section, params):
        inbox = self.options["inbox"]
        if section.target != inbox:
            raise SourceError(f"no inbox '{section.target}'", "not_found")
        rows = [{"page": n, "inbox": inbox, "from_no": "A123456789"} for n in range(1, self.options["pages"] + 1)]
        for flt in section.filters:
            rows = [row for row in rows if str(row.get(flt.column)) == str(self.filter_value(flt, params))]
        return self.project(rows, section)
"""


@pytest.fixture
def fax_kind(tmp_path, monkeypatch):
    """A new kind: one module dropped in the connectors' package, no other file touched."""
    import app.connectors as package
    from app.connectors import base

    (tmp_path / "zz_fax.py").write_text(FAX_KIND, encoding="utf-8")
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    base.discover(refresh=True)
    yield "fax"
    base._registry.pop("fax", None)
    sys.modules.pop("app.connectors.zz_fax", None)

"""The API's contract: the OpenAPI document FAB builds, and the strictness of FAB's generated schemas.

``/api/v1/_openapi`` (and Swagger UI at ``/swagger/v1``) are for whoever holds
their permissions (Admin). The document is built as FAB builds it, with two
differences: a failure is not hidden as FAB's bare 500, and the nested schemas
FAB generates for related records are written inline, so two relations to the
same model (a category's agency and its receiving agency) never clash by name.
What several hand-written operations share is a component registered once
and referenced from their docstrings with ``$ref``: the ``pk`` path parameter
here (``PARAMETERS``), shared answers in an API class's ``responses``, which
FAB registers (the transfer APIs' case and file, the sign-in's tokens).

``StrictModel2SchemaConverter`` is FAB's model-to-schema converter whose
schemas take a related record only by its id (a whole number, or a list of
them): FAB's would take an object and build a new record from its keys (a
server error for any key the model does not have).
"""

from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import current_app, request
from flask_appbuilder.api import BaseApi, expose, protect
from flask_appbuilder.api.convert import Model2SchemaConverter
from flask_appbuilder.api.manager import OpenApi, SwaggerView
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError, pre_load
from marshmallow_sqlalchemy.fields import Related, RelatedList

RELATED_ID = _l("Give the id (a whole number) of the related record.")

# Path parameters several hand-written operations share: registered once in
# the document, referenced from their docstrings by name (``parameters: [pk]``,
# which apispec writes as ``$ref: '#/components/parameters/pk'``), never
# repeated there.
PARAMETERS = {
    "pk": {
        "in": "path",
        "name": "pk",
        "required": True,
        "description": "the record's id",
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    },
}


def schema_name(schema) -> str | None:
    """A component name for a schema; None (written inline) for FAB's generated nested ones."""
    cls = resolve_schema_cls(schema)
    name = cls.__name__
    if name == "MetaSchema":
        return None
    return name[:-6] if name.endswith("Schema") and len(name) > 6 else name


class PlatformOpenApi(OpenApi):
    """FAB's OpenAPI document endpoint (same permission name), built without FAB's ``@safe``."""

    class_permission_name = "OpenApi"

    @expose("/<version>/_openapi")
    @protect()
    def get(self, version):
        """The OpenAPI document of every API of a version
        ---
        get:
          description: >-
            The OpenAPI document of every API of this version
          parameters:
          - in: path
            schema:
              type: string
            name: version
            required: true
          responses:
            200:
              description: The OpenAPI document
              content:
                application/json:
                  schema:
                    type: object
            401:
              $ref: '#/components/responses/401'
            404:
              $ref: '#/components/responses/404'
        """
        spec = APISpec(
            title=current_app.appbuilder.app_name,
            version=version,
            openapi_version="3.0.2",
            info={"description": current_app.appbuilder.app_name},
            plugins=[MarshmallowPlugin(schema_name_resolver=schema_name)],
            servers=current_app.config.get("FAB_OPENAPI_SERVERS", [{"url": request.host_url}]),
        )
        for name, parameter in PARAMETERS.items():
            spec.components.parameter(name, parameter["in"], parameter)
        found = False
        for api in current_app.appbuilder.baseviews:
            if isinstance(api, BaseApi) and api.version == version:
                api.add_api_spec(spec)
                found = True
        if not found:
            return self.response_404()
        return self.response(200, **spec.to_dict())


def _related_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class StrictModel2SchemaConverter(Model2SchemaConverter):
    """FAB's converter; the schemas it makes refuse anything but ids for related records (422)."""

    def convert(self, columns, model=None, nested=True, parent_schema_name=None):
        schema = super().convert(columns, model=model, nested=nested, parent_schema_name=parent_schema_name)
        related = {
            name: isinstance(field, RelatedList)
            for name, field in schema.fields.items()
            if isinstance(field, (Related, RelatedList)) and not field.dump_only
        }
        if not related:
            return schema

        class MetaSchema(type(schema)):  # FAB names its schemas by this class name
            @pre_load
            def related_records_by_id(self, data, **kwargs):
                if not isinstance(data, dict):
                    return data
                errors = {}
                for name, many in related.items():
                    value = data.get(name)
                    if value is None:
                        continue
                    valid = isinstance(value, list) and all(map(_related_id, value)) if many else _related_id(value)
                    if not valid:
                        errors[name] = [str(RELATED_ID)]
                if errors:
                    raise ValidationError(errors)
                return data

        return MetaSchema()


def register(appbuilder) -> None:
    if current_app.config.get("FAB_API_SWAGGER_UI", False):
        appbuilder.add_api(PlatformOpenApi)
        appbuilder.add_view_no_menu(SwaggerView)

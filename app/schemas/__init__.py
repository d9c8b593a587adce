"""Marshmallow schemas, one module per capability: input and output of the API and the screens."""

"""Web-service sources (JSON over HTTP) with httpx.

Source settings (``RestSettings``): ``url`` is the base URL, ``account`` the
login for basic authentication; of every kind's, ``timeout`` is the seconds
for each request, ``pool_size`` the keep-alive connections kept. ``options``
(the section's options override the source's)::

    method        "GET" (default) or "POST"
    params        query string: {"q": "{name}"}; placeholders are filled
                  from the section's filter columns, then the inputs
    json          POST body template (same placeholders, strings only)
    headers       extra request headers (constant)
    rows_path     dot path to the list of rows in the JSON answer, for
                  example "data.items"; a JSON object there is one row;
                  empty: the whole answer
    auth          "basic" (account/secret) | "bearer" (secret as token) |
                  "header" (secret in the header named by auth_header)
    verify        TLS: true (default), false, or a CA bundle path
    client_cert   TLS client certificate (PEM path); client_key its key
    health_path   path that test() requests (default: the base URL)

The section's ``target`` is a path template such as "/companies/{ban}". Each
placeholder value is URL-quoted (a "/" or ".." in an input cannot change the
path, and nothing can change the host). Filters whose column no placeholder
uses are applied to the returned rows (eq, ne, lt, le, gt, ge, like, prefix,
in). Nested objects in a row are flattened into "a.b" columns; a list of
plain values becomes one text joined with "；".

HTTP 404 is an empty result (no such record); 401/403 -> refused; 408/504 ->
timeout; 502/503 -> unreachable; other 4xx -> config; 5xx -> bad_response.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.parse

from flask_babel import lazy_gettext as _l
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.connectors.base import (
    Connector,
    Entity,
    Field,
    Filter,
    Result,
    SectionSpec,
    SettingsSchema,
    SourceConfig,
    SourceError,
    http_url,
    refusal,
    register,
    text,
)
from app.lib.confinement import Refused

log = logging.getLogger(__name__)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _httpx():
    try:
        import httpx
    except ImportError:
        raise SourceError(_l("httpx is not installed (pip install httpx)"), "driver") from None
    return httpx


def fill(template: str, values: dict, quote: bool) -> str:
    """Replace {name} by its value; URL-quote it for a path segment."""

    def repl(match):
        name = match.group(1)
        if name not in values or values[name] is None:
            raise SourceError(_l("missing input '%(name)s'", name=name), "config")
        text = str(values[name])
        if not quote:
            return text
        text = urllib.parse.quote(text, safe="")
        if text in (".", ".."):
            text = text.replace(".", "%2E")
        return text

    return _PLACEHOLDER.sub(repl, template)


def placeholders(*templates) -> set[str]:
    names: set[str] = set()
    for t in templates:
        if isinstance(t, str):
            names.update(_PLACEHOLDER.findall(t))
        elif isinstance(t, dict):
            names |= placeholders(*t.values())
        elif isinstance(t, (list, tuple)):
            names |= placeholders(*t)
    return names


def fill_structure(value, values: dict):
    if isinstance(value, str):
        return fill(value, values, quote=False)
    if isinstance(value, dict):
        return {k: fill_structure(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_structure(v, values) for v in value]
    return value


def dig(document, path: str):
    """Follow a dot path ("data.items"); a missing key gives KeyError."""
    node = document
    for part in [p for p in (path or "").split(".") if p]:
        if isinstance(node, dict):
            node = node[part]
        elif isinstance(node, list) and part.isdigit():
            node = node[int(part)]
        else:
            raise KeyError(part)
    return node


def flatten(row: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, list) and all(v is None or isinstance(v, (str, int, float)) for v in value):
            out[name] = "；".join("" if v is None else str(v) for v in value)
        else:
            out[name] = value
    return out


def as_rows(node) -> list[dict]:
    if node is None:
        return []
    if isinstance(node, dict):
        node = [node]
    if not isinstance(node, list):
        raise SourceError(_l("the answer holds no list of records at the configured path"), "bad_response")
    return [flatten(item) if isinstance(item, dict) else {"value": item} for item in node]


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def matches(row: dict, flt: Filter, value) -> bool:
    """A filter applied to a row already fetched (text comparison, numbers
    when both sides are numbers)."""
    cell = row.get(flt.column)
    op = flt.op or "eq"
    if op == "eq":
        return (cell is None and value is None) or (cell is not None and str(cell) == str(value))
    if op == "ne":
        return not matches(row, Filter(flt.column, op="eq"), value)
    if op == "in":
        values = value.split(",") if isinstance(value, str) else (value or [])
        return cell is not None and str(cell) in {str(v).strip() for v in values}
    if cell is None or value is None:
        return False
    if op == "prefix":
        return str(cell).startswith(str(value))
    if op == "like":
        return str(value) in str(cell)
    if op in ("lt", "le", "gt", "ge"):
        a, b = _number(cell), _number(value)
        if a is None or b is None:
            a, b = str(cell), str(value)
        return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
    raise SourceError(_l("unknown operator '%(op)s'", op=op), "config")


def order(rows: list[dict], order_by) -> list[dict]:
    for col in reversed(list(order_by)):
        name, desc = col.lstrip("-"), col.startswith("-")
        rows.sort(
            key=lambda r, n=name: (
                r.get(n) is None,
                _number(r.get(n)) is None,
                _number(r.get(n)) or 0,
                str(r.get(n) or ""),
            ),
            reverse=desc,
        )
    return rows


def _bool_or_path(value) -> bool:
    if isinstance(value, bool) or (isinstance(value, str) and 0 < len(value) <= 500):
        return True
    raise ValidationError(str(_l("Use true, false or the path of a CA bundle.")))


class HttpOptions(Schema):
    """What the rest and egate kinds share: authentication and TLS."""

    class Meta:
        unknown = RAISE

    auth = fields.String(validate=validate.OneOf(("", "basic", "bearer", "header")))
    auth_header = text(100)
    headers = fields.Dict(keys=text(100), values=text(1000), validate=validate.Length(max=50))
    verify = fields.Raw(validate=_bool_or_path)
    client_cert = text(500)
    client_key = text(500)


class DeclaredColumn(Schema):
    class Meta:
        unknown = RAISE

    name = text(200, required=True)
    type = text(40, load_default="text")


class DeclaredResource(Schema):
    """A path the administrator declares for the form designer (``describe``)."""

    class Meta:
        unknown = RAISE

    target = text(500, required=True)
    label = text(200)
    columns = fields.List(fields.Nested(DeclaredColumn), validate=validate.Length(max=500), load_default=list)


class RestOptions(HttpOptions):
    method = fields.String(validate=validate.OneOf(("GET", "POST", "get", "post")))
    params = fields.Dict(keys=text(100), values=text(1000), validate=validate.Length(max=50))
    json = fields.Raw()
    rows_path = text(200)
    health_path = text(500)
    resources = fields.List(fields.Nested(DeclaredResource), validate=validate.Length(max=200))


class HttpSettings(SettingsSchema):
    url = http_url(
        required=True, error_messages={"required": _l("Web-service and e-gate sources need an http(s) URL.")}
    )
    account = text(100)
    options = fields.Nested(HttpOptions, load_default=dict)


class RestSettings(HttpSettings):
    options = fields.Nested(RestOptions, load_default=dict)


class HttpSource(Connector):
    """What the rest and egate kinds share: one keep-alive httpx.Client per
    source, auth, TLS, and the mapping of failures to SourceError."""

    def __init__(self, source: SourceConfig):
        super().__init__(source)  # the URL checked by HttpSettings
        self.url = self.settings["url"]
        self._client = None
        self._lock = threading.Lock()

    @classmethod
    def confine(cls, source: SourceConfig) -> None:
        if source.confinement is not None:
            source.confinement.check_url(cls.settings_of(source)["url"])

    def client(self):
        with self._lock:
            if self._client is not None:
                return self._client
            httpx = _httpx()
            s, opts = self.source, self.options
            headers = {"Accept": "application/json", "User-Agent": "county-platform-connector"}
            headers.update({str(k): str(v) for k, v in (opts.get("headers") or {}).items()})
            auth = None
            mode = (opts.get("auth") or "").lower()
            if mode == "basic":
                auth = httpx.BasicAuth(self.settings.get("account") or "", s.secret or "")
            elif mode == "bearer":
                headers["Authorization"] = f"Bearer {s.secret or ''}"
            elif mode == "header":
                headers[str(opts.get("auth_header") or "X-API-Key")] = s.secret or ""
            elif mode:
                raise SourceError(_l("unknown auth '%(mode)s' (use basic, bearer or header)", mode=mode), "config")
            cert = None
            if opts.get("client_cert"):
                cert = (opts["client_cert"], opts["client_key"]) if opts.get("client_key") else opts["client_cert"]
            size = max(1, int(s.pool_size))
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            extra = {}
            if s.confinement is not None:
                from app.lib.guardedhttp import GuardedTransport

                # the allow-list is checked on every new connection, at the address it goes to
                extra["transport"] = GuardedTransport(
                    s.confinement, verify=opts.get("verify", True), cert=cert, limits=limits
                )
            else:
                extra = {"verify": opts.get("verify", True), "cert": cert}
            self._client = httpx.Client(
                base_url=self.url,
                timeout=max(float(s.timeout), 0.1),
                limits=limits,
                headers=headers,
                auth=auth,
                follow_redirects=False,
                trust_env=False,
                **extra,
            )
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @property
    def host(self) -> str:
        """The source's host (and port): what messages and log lines name, never the URL's path or query."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    @property
    def where(self):
        """The source in messages, in the reader's language (``lazy_gettext``)."""
        return _l("the web service at %(host)s", host=self.host)

    def send(self, method: str, path: str, *, params=None, json=None):
        """Send one request; failures become SourceError with plain words
        (never the URL's query, the body, or the secret)."""
        httpx = _httpx()
        client = self.client()
        try:
            request = client.build_request(method, path, params=params, json=json)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise SourceError(_l("the request could not be built from the section settings"), "config") from None
        base = httpx.URL(self.url)
        if request.url.host != base.host or request.url.scheme != base.scheme or request.url.port != base.port:
            raise SourceError(_l("the section's path leaves the source's host"), "config")
        try:
            return client.send(request)
        except Refused as exc:
            log.warning("source %s: %s refused at connect time (%s)", self.source.name, self.host, exc.reason)
            raise refusal(exc) from None
        except httpx.ConnectError as exc:
            if "certificate" in str(exc).lower():
                message = _l("cannot reach %(where)s: the TLS certificate is not trusted", where=self.where)
                raise SourceError(message, "refused") from None
            raise self.unreachable(exc) from None
        except httpx.TransportError as exc:  # timeouts too
            raise self.unreachable(exc) from None

    def unreachable(self, exc: Exception) -> SourceError:
        """One message for a refused connection, a timeout, a silent or unreachable host, a broken
        answer: which ports are open is nobody's business but the server log's."""
        log.info("source %s: %s failed: %s %s", self.source.name, self.host, type(exc).__name__, str(exc)[:200])
        seconds = f"{self.source.timeout:g}"
        return SourceError(
            _l("cannot reach %(where)s, or it did not answer within %(seconds)s s", where=self.where, seconds=seconds),
            "unreachable",
        )

    def check_status(self, response) -> None:
        code = response.status_code
        if code < 400:
            return
        where = self.where
        if code in (401, 403):
            raise SourceError(_l("%(where)s refused the request (HTTP %(code)s)", where=where, code=code), "refused")
        if code in (408, 504):
            raise SourceError(_l("%(where)s did not answer in time (HTTP %(code)s)", where=where, code=code), "timeout")
        if code in (502, 503):
            raise SourceError(_l("%(where)s is unavailable (HTTP %(code)s)", where=where, code=code), "unreachable")
        if code < 500:
            raise SourceError(_l("%(where)s rejected the request (HTTP %(code)s)", where=where, code=code), "config")
        raise SourceError(_l("%(where)s failed (HTTP %(code)s)", where=where, code=code), "bad_response")

    def json_of(self, response):
        try:
            return response.json()
        except ValueError:
            raise SourceError(_l("%(where)s did not answer with JSON", where=self.where), "bad_response") from None

    def test(self) -> float:
        started = time.perf_counter()
        path = self.options.get("health_path") or ""
        response = self.send("GET", path)
        if response.status_code in (401, 403) or response.status_code >= 500:
            self.check_status(response)
        return time.perf_counter() - started


@register("rest")
class RestConnector(HttpSource):
    label = _l("Web service (REST/JSON)")
    order = 30
    settings_schema = RestSettings

    def describe(self) -> list[Entity]:
        """What the administrator declared in ``options.resources`` (a web
        service publishes no catalogue the platform could read)."""
        declared = self.options.get("resources") or []
        return [
            Entity(
                target=str(r.get("target", "")),
                kind="resource",
                label=str(r.get("label") or ""),
                columns=tuple(Field(str(c["name"]), str(c.get("type") or "text")) for c in r.get("columns") or []),
            )
            for r in declared
            if isinstance(r, dict)
        ]

    def fetch(self, section: SectionSpec, params: dict) -> Result:
        opts = {**self.options, **(section.options or {})}
        method = str(opts.get("method") or "GET").upper()
        if method not in ("GET", "POST"):
            raise SourceError(_l("unsupported method '%(method)s'", method=method), "config")
        target = section.target or ""
        if "://" in target or target.startswith("//"):
            raise SourceError(_l("the section's path must be relative to the source's URL"), "config")

        values = {k: v for k, v in params.items() if not str(k).startswith("_") and not isinstance(v, dict)}
        filter_values = []
        for flt in section.filters:
            value = self.filter_value(flt, params)
            filter_values.append((flt, value))
            if (flt.op or "eq") == "eq":
                values[flt.column] = value
        used = placeholders(target, opts.get("params") or {}, opts.get("json") or {})

        path = fill(target, values, quote=True)
        query = {k: fill(str(v), values, quote=False) for k, v in (opts.get("params") or {}).items()}
        body = fill_structure(opts.get("json"), values) if method == "POST" and opts.get("json") else None
        response = self.send(method, path, params=query or None, json=body)
        if response.status_code == 404:
            return Result(columns=list(section.columns), rows=[], truncated=False)
        self.check_status(response)
        document = self.json_of(response)
        try:
            node = dig(document, opts.get("rows_path") or "")
        except (KeyError, IndexError):
            raise SourceError(_l("the answer has no '%(path)s'", path=opts.get("rows_path")), "bad_response") from None
        rows = as_rows(node)
        for flt, value in filter_values:
            if (flt.op or "eq") == "eq" and flt.column in used:
                continue
            rows = [r for r in rows if matches(r, flt, value)]
        if section.order_by:
            rows = order(rows, section.order_by)
        return self.project(rows, section)

"""An httpx transport that connects only where a Confinement allows, checked at connect time.

httpx resolves and connects inside httpcore's network backend; this module
gives httpcore a backend (``GuardedBackend``, httpcore's public
``NetworkBackend`` API) that resolves the host itself, refuses unless every
address it has is on the allow-list, and connects to those checked addresses
only. TLS still verifies the certificate against the URL's host name (httpcore
passes it as the server name). ``GuardedTransport`` is httpx's public
``BaseTransport`` over an httpcore pool with that backend; it maps httpcore's
errors to httpx's as httpx's own transport does.
"""

from __future__ import annotations

import ssl
import typing

import httpcore
import httpx

from app.lib.confinement import Confinement

_ERRORS = (  # most specific first
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


def _mapped(exc: Exception) -> Exception | None:
    for theirs, ours in _ERRORS:
        if isinstance(exc, theirs):
            return ours(str(exc))
    return None


class GuardedBackend(httpcore.SyncBackend):
    """Connect only to addresses the confinement allows, resolved here (never twice)."""

    def __init__(self, confinement: Confinement):
        super().__init__()
        self.confinement = confinement

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addresses = self.confinement.connectable(host, port)  # raises confinement.Refused
        failure: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError("no address to connect to")

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("unix sockets are not data sources")


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: typing.Iterable[bytes]):
        self.stream = stream

    def __iter__(self):
        try:
            yield from self.stream
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


def ssl_context(verify: bool | str = True, cert=None) -> ssl.SSLContext:
    """TLS as httpx builds it: certifi's CAs, none (``False``), or a CA bundle or folder; a client certificate."""
    import os

    import certifi

    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str):
        context = (
            ssl.create_default_context(capath=verify)
            if os.path.isdir(verify)
            else ssl.create_default_context(cafile=verify)
        )
    else:
        context = ssl.create_default_context(cafile=certifi.where())
    if cert:
        context.load_cert_chain(*(cert if isinstance(cert, tuple) else (cert,)))
    return context


class GuardedTransport(httpx.BaseTransport):
    def __init__(self, confinement: Confinement, *, verify=True, cert=None, limits: httpx.Limits):
        self.pool = httpcore.ConnectionPool(
            ssl_context=ssl_context(verify, cert),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(confinement),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            answer = self.pool.handle_request(core)
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        self.pool.close()

"""Reverse proxies the platform trusts, by address (TRUSTED_PROXIES).

A proxy in front of the platform (nginx) terminates TLS and tells the platform
what it saw: the scheme and host the browser used, the client's address
(X-Forwarded-Proto/Host/For) and, when it verified one, the client's
certificate (CLIENT_CERT_HEADER, with its verdict in CLIENT_VERIFY_HEADER).
Anyone can send those headers, so they are believed only when the TCP peer is
one of the trusted proxies: ``TrustedProxies`` rewrites the WSGI environment
for those peers only (Werkzeug's ProxyFix trusts a number of hops, whoever
sent them), and drops the headers from anyone else.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from cryptography import x509

# The WSGI environment key holding the TCP peer's address (the proxy's, when
# one forwarded the request; REMOTE_ADDR then holds the client's).
PEER_ADDR = "platform.proxy_peer"

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

# A certificate header longer than this is no card certificate (a few KB at most).
MAX_CERT_HEADER = 16 * 1024
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def parse_networks(values: Iterable[str] | str, setting: str = "TRUSTED_PROXIES") -> Networks:
    """Addresses and CIDR networks ("10.0.0.5", "10.20.0.0/16", "::1"), comma-separated or a list.

    Raises ValueError naming the ``setting`` and the entry that is neither.
    """
    if isinstance(values, str):
        values = values.split(",")
    networks = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{setting}: {value!r} is not an IP address or network") from None
    return tuple(networks)


def is_trusted(address: str | None, trusted: Networks | Iterable[str] | str) -> bool:
    """Whether ``address`` (a TCP peer) lies in one of the ``trusted`` networks."""
    if not address:
        return False
    networks = trusted if _is_networks(trusted) else parse_networks(trusted)
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def _is_networks(value) -> bool:
    return isinstance(value, tuple) and all(isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) for n in value)


def _header_values(headers, name: str) -> list[str]:
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        return list(getlist(name))
    value = headers.get(name) if isinstance(headers, Mapping) else None
    return [] if value is None else [value]


def forwarded_client_certificate(
    remote_addr: str | None,
    headers,
    trusted: Networks | Iterable[str] | str,
    header: str = "X-SSL-Client-Cert",
    verify_header: str | None = "X-SSL-Client-Verify",
) -> bytes | None:
    """The client certificate (DER) a trusted proxy verified and forwarded, else None.

    ``remote_addr`` is the TCP peer (``PEER_ADDR`` in the environment, not the
    forwarded client address). The header is read only from a trusted peer, only
    when ``verify_header`` (if named) says SUCCESS, and only when it holds exactly
    one certificate: nginx's ``$ssl_client_escaped_cert`` (URL-escaped PEM), a PEM
    with its line breaks folded into spaces or tabs, or base64 DER. Anything else
    (absent, repeated, malformed) is None: never an error.
    """
    if not header or not is_trusted(remote_addr, trusted):
        return None
    if verify_header:
        verdicts = _header_values(headers, verify_header)
        if len(verdicts) != 1 or verdicts[0].strip().upper() != "SUCCESS":
            return None
    values = _header_values(headers, header)
    if len(values) != 1 or not values[0] or len(values[0]) > MAX_CERT_HEADER:
        return None
    return _certificate_der(values[0])


def _certificate_der(value: str) -> bytes | None:
    text = unquote(value) if "%" in value else value
    blocks = _PEM.findall(text)
    if len(blocks) > 1:
        return None
    body = blocks[0] if blocks else text
    if not blocks and "-----" in text:
        return None
    body = re.sub(r"\s+", "", body)
    try:
        der = base64.b64decode(body, validate=True)
        x509.load_der_x509_certificate(der)  # one whole certificate, nothing else
    except (binascii.Error, ValueError):
        return None
    return der


def _last(values: str) -> str:
    return values.rsplit(",", 1)[-1].strip()


def client_address(peer: str, forwarded_for: str | None, trusted: Networks) -> str:
    """The client's address: walking X-Forwarded-For from the right (the entries
    our own proxies appended), the first address that is not a trusted proxy.

    Entries to its left were written by whoever sent the request and are not believed.
    """
    address = peer
    if not forwarded_for:
        return address
    for entry in reversed(forwarded_for.split(",")):
        entry = entry.strip()
        if not is_trusted(address, trusted):
            break
        candidate = _bare_address(entry)
        if candidate is None:
            break  # garbage from somewhere: stop at the last good hop
        address = candidate
    return address


def _bare_address(entry: str) -> str | None:
    """An X-Forwarded-For entry as an address ("[::1]:80" and "1.2.3.4:5" drop their ports)."""
    if entry.startswith("["):
        entry = entry[1:].split("]", 1)[0]
    elif entry.count(":") == 1:
        entry = entry.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(entry))
    except ValueError:
        return None


_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


class TrustedProxies:
    """WSGI middleware: the forwarding headers of trusted peers are applied, everyone
    else's removed.

    From a peer in ``trusted``: REMOTE_ADDR becomes the client's address
    (``client_address``), the scheme the last X-Forwarded-Proto (http or https),
    the host the last X-Forwarded-Host (with X-Forwarded-Port, if sent). The peer's
    own address stays in ``PEER_ADDR``. From any other peer, X-Forwarded-* and the
    ``strip`` headers (the client certificate headers) are removed, so nothing
    downstream can read them by mistake.
    """

    FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT")

    def __init__(self, app, trusted: Networks | Iterable[str] | str, strip: Iterable[str] = ()):
        self.app = app
        self.trusted = trusted if _is_networks(trusted) else parse_networks(trusted)
        self.strip = tuple("HTTP_" + name.upper().replace("-", "_") for name in strip if name)

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR")
        environ[PEER_ADDR] = peer
        if self.trusted and is_trusted(peer, self.trusted):
            self._apply(environ, peer)
        else:
            for key in self.FORWARDED + self.strip:
                environ.pop(key, None)
        return self.app(environ, start_response)

    def _apply(self, environ, peer: str) -> None:
        environ["REMOTE_ADDR"] = client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"), self.trusted)
        proto = _last(environ.get("HTTP_X_FORWARDED_PROTO", "")).lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
        host = _last(environ.get("HTTP_X_FORWARDED_HOST", ""))
        if host and _HOST.match(host):
            environ["HTTP_HOST"] = host
            environ["SERVER_NAME"] = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        port = _last(environ.get("HTTP_X_FORWARDED_PORT", ""))
        if port.isdigit() and 0 < int(port) < 65536:
            environ["SERVER_PORT"] = port
            base = environ.get("HTTP_HOST", "")
            if base and not base.endswith("]") and ":" in base:
                base = base.rsplit(":", 1)[0]
            default = "443" if environ.get("wsgi.url_scheme") == "https" else "80"
            if base:
                environ["HTTP_HOST"] = base if port == default else f"{base}:{port}"

"""Where data sources may reach: the operators' confinement of files, databases and web addresses.

A ``Confinement`` is plain data built from the operators' configuration (the
sources service builds it, ``app.services.sources.settings``) and carried by
every source's settings to its connector, which checks it when the source is
saved and again each time it opens a file, a database or a connection:

- files (text files, SQLite databases) only under ``file_roots``, judged
  after resolving links and ``..``; never a ``protected`` path (the platform's
  database, keys and stores), whatever root holds it; never the ``instance``
  folder, unless a root lies strictly inside it (the demo's ``instance/sources``);
- SQL servers: never the platform's own database (same database name and port
  on an address of the same server); and a source reads its own database only:
  a table named with another database in front (MySQL/MariaDB ``db.table``,
  SQL Server ``db.schema.table``) is refused (``check_target``), so no source
  reaches the platform's database, or another agency's, on a shared server;
- web addresses only to an endpoint of the allow-list: addresses or networks
  (CIDR), or host names, each with an optional port or port range. A URL's
  host name is resolved and EVERY address it has must be allowed; the
  connection is then made to those checked addresses only (``connectable``),
  so a name that changes its address later (DNS rebinding) gains nothing.

Nothing here reads a file's content or reveals whether a path exists: the
verdict depends on the path as resolved, not on what is there.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

# Why a setting was refused (``Refused.reason``).
OUTSIDE_ROOTS = "outside_roots"
PROTECTED = "protected"
PLATFORM_DATABASE = "platform_database"
NOT_ALLOWED = "not_allowed"
UNRESOLVED = "unresolved"
OTHER_DATABASE = "other_database"

DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "oracle": 1521, "mssql": 1433}
SQLITE_COMPANIONS = ("", "-journal", "-wal", "-shm")
# SQLAlchemy's backend names as the SQL sources' dialects call them (MariaDB is "mysql" there).
BACKENDS = {"mariadb": "mysql"}


class Refused(Exception):
    """A source's setting the confinement does not allow. ``field``: path,
    database, host or url; ``reason``: one of the constants above."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def real(path: str) -> str:
    """``path`` with links and ``..`` resolved, absolute (relative to the working folder)."""
    return os.path.realpath(os.path.expanduser(str(path)))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class Endpoint:
    """One entry of the allow-list: a network (or one host name) and a port range (None: any port)."""

    network: str | None = None  # "127.0.0.1/32", "10.0.0.0/8", "::1/128"
    name: str | None = None  # a host name, lower case
    ports: tuple[int, int] | None = None

    def admits(self, host: str, address: str, port: int) -> bool:
        if self.ports is not None and not (self.ports[0] <= port <= self.ports[1]):
            return False
        if self.name is not None:
            return host.lower().rstrip(".") == self.name
        try:
            return ipaddress.ip_address(address) in ipaddress.ip_network(self.network)
        except ValueError:
            return False


def parse_endpoint(entry: str) -> Endpoint:
    """``127.0.0.1:5101``, ``10.0.0.0/8``, ``10.0.0.0/8:8000-8099``, ``[::1]:8031``,
    ``[fd00::/8]:443``, ``gateway.example.gov.tw:443``; raises ValueError."""
    text = entry.strip()
    if not text:
        raise ValueError("an empty entry")
    ports = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"cannot read {entry!r}")
            ports = _ports(rest[1:])
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        ports = _ports(port_text)
    else:
        host = text  # an address without a port, or an IPv6 address without brackets
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        name = host.lower().rstrip(".")
        if not name or "/" in name or not all(part for part in name.split(".")):
            raise ValueError(f"cannot read {entry!r}") from None
        return Endpoint(name=name, ports=ports)
    return Endpoint(network=str(network), ports=ports)


def _ports(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    first, last = int(low), int(high or low)
    if not (1 <= first <= last <= 65535):
        raise ValueError(f"not a port range: {text!r}")
    return (first, last)


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` has now (an address literal is itself); [] when it has none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


def is_local(address: str) -> bool:
    """An address of this machine: loopback, unspecified, or one it can bind."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


# Where a qualified table name names a database rather than a schema of the source's
# own database: MySQL/MariaDB (a schema IS a database there) and SQL Server (three parts).
DATABASE_PART = {"mysql": 2, "mssql": 3}


def check_target(backend: str, database: str | None, target: str | None) -> None:
    """Refuse a section's table or view that names a database other than the
    source's own (``Refused("target", OTHER_DATABASE)``): on MySQL/MariaDB
    ``otherdb.table`` (and more than two parts), on SQL Server
    ``otherdb.schema.table``. The own database named in full is fine; on the
    other servers a qualified name stays inside the connection's database."""
    parts_at = DATABASE_PART.get(BACKENDS.get(backend, backend))
    if parts_at is None:
        return
    parts = [part.strip() for part in (target or "").split(".")]
    if len(parts) < parts_at:
        return
    named = parts[0]
    own = (database or "").strip()
    same = named.lower() == own.lower() if backend == "mssql" else named == own
    if len(parts) > parts_at or not same:
        raise Refused("target", OTHER_DATABASE)


@dataclass(frozen=True)
class PlatformServer:
    """The platform's own database on a server: its backend, host (None: a local socket), port and name."""

    backend: str
    host: str | None
    port: int
    database: str


@dataclass(frozen=True)
class Confinement:
    file_roots: tuple[str, ...] = ()  # resolved folders
    protected: tuple[str, ...] = ()  # resolved files and folders no source may read
    platform_files: tuple[str, ...] = ()  # the platform's SQLite database and its companions
    instance: str | None = None  # the resolved instance folder
    platform_server: PlatformServer | None = None
    url_allow: tuple[Endpoint, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        file_roots=(),
        protected=(),
        instance: str | None = None,
        platform_url: str | None = None,
        url_allow=(),
    ) -> Confinement:
        """From the operators' settings: folders, paths, the platform's SQLAlchemy URL, allow-list entries
        (raises ValueError for an entry it cannot read)."""
        from sqlalchemy.engine import make_url

        guarded = [real(p) for p in protected if p]
        platform_files: list[str] = []
        server = None
        if platform_url:
            url = make_url(platform_url)
            backend = BACKENDS.get(url.get_backend_name(), url.get_backend_name())
            if backend == "sqlite":
                if url.database and url.database != ":memory:" and not url.database.startswith("file::memory"):
                    database = real(url.database.removeprefix("file:").split("?", 1)[0])
                    platform_files = [database + suffix for suffix in SQLITE_COMPANIONS]
            elif url.database:
                server = PlatformServer(
                    backend=backend,
                    host=url.host or None,
                    port=int(url.port or DEFAULT_PORTS.get(backend, 0)),
                    database=url.database,
                )
        return cls(
            file_roots=tuple(real(root) for root in file_roots if root),
            protected=tuple(guarded),
            platform_files=tuple(platform_files),
            instance=real(instance) if instance else None,
            platform_server=server,
            url_allow=tuple(parse_endpoint(entry) for entry in url_allow if str(entry).strip()),
        )

    # -- files ---------------------------------------------------------------------

    def check_file(self, path: str, field: str = "path") -> str:
        """The resolved path of ``path`` if a source may read it; raises Refused."""
        resolved = real(path)
        if resolved in self.platform_files:
            raise Refused(field, PLATFORM_DATABASE)
        if any(_within(resolved, guarded) for guarded in self.protected):
            raise Refused(field, PROTECTED)
        roots = [root for root in self.file_roots if _within(resolved, root)]
        if self.instance and _within(resolved, self.instance):
            # only through a root placed inside the instance folder on purpose
            if not any(root != self.instance and _within(root, self.instance) for root in roots):
                raise Refused(field, PROTECTED)
        if not roots:
            raise Refused(field, OUTSIDE_ROOTS)
        return resolved

    # -- database servers ----------------------------------------------------------

    def check_server(self, backend: str, host: str | None, port: int | None, database: str | None) -> list[str]:
        """Refuse the platform's own database: the same backend, database name
        and port on an address of the same server (any local address when the
        platform's database is on this machine). Returns the addresses it
        judged ([] when the name or port already tells them apart), for the
        caller to connect to those and no others."""
        own = self.platform_server
        if own is None or backend != own.backend or not database:
            return []
        if database.lower() != own.database.lower():
            return []
        if int(port or DEFAULT_PORTS.get(backend, 0)) != own.port:
            return []
        theirs = resolve(host, own.port) if host else []
        if self.same_server(host, theirs):
            raise Refused("database", PLATFORM_DATABASE)
        return theirs

    def same_server(self, host: str | None, theirs: list[str]) -> bool:
        own = self.platform_server
        if own is None:
            return False
        if not host:
            theirs = ["127.0.0.1"]  # a local socket
        elif not theirs:  # cannot be told apart: treated as the same
            return True
        if own.host is None or own.host.startswith("/"):
            return any(is_local(a) for a in theirs)
        ours = resolve(own.host, own.port)
        if any(is_local(a) for a in ours):
            return any(is_local(a) for a in theirs)
        return bool(set(theirs) & set(ours))

    # -- web addresses -------------------------------------------------------------

    def admits(self, host: str, address: str, port: int) -> bool:
        return any(endpoint.admits(host, address, port) for endpoint in self.url_allow)

    def connectable(self, host: str, port: int, field: str = "url") -> list[str]:
        """The addresses ``host`` has now, every one of them allowed at ``port``; raises Refused."""
        if not self.url_allow:
            raise Refused(field, NOT_ALLOWED)
        addresses = resolve(host, port)
        if not addresses:
            raise Refused(field, UNRESOLVED)
        if not all(self.admits(host, address, port) for address in addresses):
            raise Refused(field, NOT_ALLOWED)
        return addresses

    def check_url(self, url: str, field: str = "url") -> None:
        """Refuse a URL whose host and port are not on the allow-list (every address of its host)."""
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)
        except ValueError:
            raise Refused(field, NOT_ALLOWED) from None
        if not parts.hostname or not port:
            raise Refused(field, NOT_ALLOWED)
        self.connectable(parts.hostname, port, field)

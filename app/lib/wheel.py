"""A wheel (PEP 427, binary distribution format) written with the standard library.

The platform builds the transfer kit's wheel itself, at its first request, so
that nothing is fetched and pip is not run inside a web process. The same
inputs give the same bytes: entries in a fixed order, one fixed timestamp, fixed
permissions, so the SHA-256 officers compare is stable across processes and
restarts. Platform plumbing: it imports nothing of the app.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# 1980-01-01, the earliest a zip entry can say; what reproducible-build tools use too
EPOCH = (1980, 1, 1, 0, 0, 0)
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*([A-Za-z0-9.+!-]*)$")


@dataclass(frozen=True)
class Wheel:
    filename: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def escape(name: str) -> str:
    """A distribution name as wheel file names spell it (PEP 427 / 503: runs of -_. become _)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def record_hash(data: bytes) -> str:
    """RECORD's `sha256=` value: URL-safe base64 of the digest, without padding."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def metadata(
    name: str,
    version: str,
    summary: str,
    requires: Iterable[str] = (),
    requires_python: str | None = None,
    description: str = "",
) -> bytes:
    """A METADATA file (core metadata 2.1)."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", f"Summary: {summary}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    if description:
        lines += ["Description-Content-Type: text/markdown", "", description.rstrip("\n")]
    return ("\n".join(lines) + "\n").encode("utf-8")


def build(
    name: str,
    version: str,
    files: Mapping[str, bytes],
    metadata_file: bytes,
    console_scripts: Mapping[str, str] | None = None,
    tag: str = "py3-none-any",
    generator: str = "app.lib.wheel",
) -> Wheel:
    """The wheel of `files` (paths inside the archive, '/'-separated, to their bytes).

    Raises ValueError for a name or version a wheel file name cannot carry, or a path
    that would leave the installation directory.
    """
    if not _NAME.match(name) or not _VERSION.match(version):
        raise ValueError("not a wheel name or version")
    for path in files:
        if path.startswith("/") or ".." in path.split("/") or "\\" in path:
            raise ValueError(f"unsafe path in a wheel: {path!r}")
    stem = f"{escape(name)}-{version}"
    info = f"{stem}.dist-info"
    entries = dict(sorted(files.items()))
    entries[f"{info}/METADATA"] = metadata_file
    purelib = "true" if tag.endswith("-none-any") else "false"
    entries[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: {generator}\nRoot-Is-Purelib: {purelib}\nTag: {tag}\n"
    ).encode()
    if console_scripts:
        scripts = "".join(f"{k} = {v}\n" for k, v in sorted(console_scripts.items()))
        entries[f"{info}/entry_points.txt"] = f"[console_scripts]\n{scripts}".encode()
    tops = sorted({p.split("/")[0] for p in files if "/" in p and not p.split("/")[0].endswith(".dist-info")})
    if tops:
        entries[f"{info}/top_level.txt"] = "".join(f"{t}\n" for t in tops).encode()
    record = "".join(f"{path},{record_hash(data)},{len(data)}\n" for path, data in entries.items())
    entries[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path, data in entries.items():
            entry = zipfile.ZipInfo(path, date_time=EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = (0o100644 & 0xFFFF) << 16
            entry.create_system = 3  # Unix, so the mode above means what it says
            archive.writestr(entry, data, compresslevel=9)
    return Wheel(f"{stem}-{tag}.whl", out.getvalue())

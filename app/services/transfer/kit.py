"""The transfer kit as one download: a wheel transfer officers install with pip.

The wheel holds the modules of ``app/kit`` byte for byte, as the top-level
package ``county_transfer_kit`` (they import one another relatively, and
nothing of the platform), with the command ``transfer-kit`` and the kit's
libraries pinned at the versions the platform itself runs (REQUIRES; a test
holds them to requirements.txt). It is built in memory at the first request,
without pip and without the network, and kept for the life of the process;
the same sources give the same bytes, so every web worker serves the same
SHA-256. No personal data is in it: serving it is not audited.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import app.kit as kit_package
from app.lib import wheel

DISTRIBUTION = "county-transfer-kit"
PACKAGE = "county_transfer_kit"
COMMAND = "transfer-kit"
REQUIRES_PYTHON = ">=3.11"
# What the kit imports besides the standard library, at requirements.txt's versions.
REQUIRES = (
    "asn1crypto==1.5.1",
    "cryptography==50.0.2",
    "pyhanko==0.38.0",
    "pyhanko-certvalidator==0.33.0",
)
# Makes demo CAs and keys with a known PIN: the demo's and the tests', never an agency's.
LEFT_OUT = frozenset({"demo_pki.py"})
SUMMARY = "County transfer kit: sign and encrypt files for another agency, decrypt and check them (CMS)"
DESCRIPTION = f"""\
# 資料傳遞簽章加密工具 / County transfer kit

    {COMMAND} encrypt --config transfer-<upload no>.json --sign-key KEY IN OUT
    {COMMAND} decrypt --config transfer-<upload no>.json --key KEY IN OUT

(or `python -m {PACKAGE} ...`). The configuration file comes from the case page
of the platform; it names the recipients, the registered sender, the trusted
CAs and the revocation lists. Exit status 0 only when decryption and every
signature, path and revocation check succeeded.
"""


@dataclass(frozen=True)
class KitDownload:
    """The kit's wheel and what the download page says about it."""

    filename: str
    data: bytes
    sha256: str
    version: str
    requires: tuple[str, ...]
    command: str = COMMAND
    package: str = PACKAGE

    @property
    def size(self) -> int:
        return len(self.data)

    def checksum_line(self) -> str:
        """The line `sha256sum -c` reads: digest, two spaces, file name."""
        return f"{self.sha256}  {self.filename}\n"


def kit_sources() -> dict[str, bytes]:
    """The kit's modules as the wheel holds them: ``county_transfer_kit/<module>.py``."""
    root = Path(kit_package.__file__).resolve().parent
    return {
        f"{PACKAGE}/{path.name}": path.read_bytes() for path in sorted(root.glob("*.py")) if path.name not in LEFT_OUT
    }


@functools.cache
def kit_download() -> KitDownload:
    """The kit's wheel, built once per process. Raises OSError if the kit's sources cannot be read."""
    version = kit_package.__version__
    meta = wheel.metadata(DISTRIBUTION, version, SUMMARY, REQUIRES, REQUIRES_PYTHON, DESCRIPTION)
    built = wheel.build(
        DISTRIBUTION,
        version,
        kit_sources(),
        meta,
        console_scripts={COMMAND: f"{PACKAGE}.__main__:cli"},
        generator="county platform (app.lib.wheel)",
    )
    return KitDownload(built.filename, built.data, built.sha256, version, REQUIRES)

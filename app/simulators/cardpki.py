"""A demo PKI shaped like Taiwan's government PKI, for the card sign-in demo and its tests.

A root like GRCA (政府憑證總管理中心) issues four CAs like MOICA (citizens),
MOEACA (businesses), GCA (government agencies) and XCA (organisations); they
issue the demo cards: a signing certificate (digitalSignature, nonRepudiation)
and an encryption certificate (keyEncipherment) each, with the identifying data
in the Subject Directory Attributes as on the real cards (DOMAIN.md). A second,
untrusted root has a look-alike MOICA of its own for the wrong-issuer card. GCA
also issues the platform's TLS server certificate (127.0.0.1 and localhost).

    python -m app.simulators.cardpki OUTDIR [--pin 1234] [--port-base 8040]
    python -m app.simulators.cardpki OUTDIR --revoke citizen-lin      (--reinstate to undo)

Ports: the CRLs are published on http://127.0.0.1:BASE/crl/<ca>.crl, and each
issuing CA's OCSP responder answers on BASE+1 (moica), +2 (moeaca), +3 (gca),
+4 (xca); both are written into the certificates (CRL distribution point and
AIA), and `python -m app.simulators.ocsp OUTDIR` serves them.

Made once per directory: a second run with the same port base reads the
directory back, re-exports the PKCS#12 files when the PIN changed, and
refreshes the CRLs and the OCSP index files; a different port base (or a
certificate near its end) makes a new PKI. Keys are RSA 2048; the CA keys lie
unencrypted under private/, the card keys only in the PIN-protected PKCS#12
files. Demo and tests only: the platform never imports this module.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import ipaddress
import json
import os
import shutil
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

FORMAT = "demo-cardpki/1"
MANIFEST = "cards.json"
UTC = datetime.UTC
DAY = datetime.timedelta(days=1)
DEFAULT_PORT_BASE = 8040
DEFAULT_PIN = "1234"
OCSP_MINUTES = 10  # nextUpdate of the responders' answers: how long the platform may cache one

# Subject Directory Attributes of the Taiwanese cards (DOMAIN.md).
SDA = "2.5.29.9"
ID_LAST4 = "2.16.886.1.100.2.51"
BUSINESS_NO = "2.16.886.1.100.2.101"
ORG_OID = "2.16.886.1.100.2.102"

DEMO_O = "示範行政院 Demo Executive Yuan"
ROOT_OU = "政府憑證總管理中心"
ROOT_CN = "示範政府憑證總管理中心 Demo GRCA"
# key: (organizational unit as on the real CA, common name, kind of card, OCSP port offset)
CAS = {
    "moica": ("內政部憑證管理中心", "示範內政部憑證管理中心 Demo MOICA", "citizen", 1),
    "moeaca": ("工商憑證管理中心", "示範工商憑證管理中心 Demo MOEACA", "business", 2),
    "gca": ("政府憑證管理中心", "示範政府憑證管理中心 Demo GCA", "government", 3),
    "xca": ("組織及團體憑證管理中心", "示範組織及團體憑證管理中心 Demo XCA", "organisation", 4),
}
UNTRUSTED_O = "不明機構 Unknown Authority"


@dataclass(frozen=True)
class CardSpec:
    """One demo card. Citizens come from the demo world (seed_data: 王小明 and his family)."""

    name: str
    kind: str
    holder: str
    state: str = "good"  # good | revoked | expired | wrong-issuer | wrong-usage
    id_number: str | None = None
    business_no: str | None = None
    org_oid: str | None = None
    agency_code: str | None = None
    username: str | None = None  # the staff account a government card is meant for


CARDS = (
    CardSpec("citizen-wang", "citizen", "王小明", id_number="A123456789"),
    CardSpec("citizen-lin", "citizen", "林美惠", id_number="U253416532"),
    CardSpec("citizen-revoked", "citizen", "張玉蘭", "revoked", id_number="A255371931"),
    CardSpec("citizen-expired", "citizen", "林睿昌", "expired", id_number="F176956919"),
    CardSpec("citizen-wrong-issuer", "citizen", "張月佳", "wrong-issuer", id_number="T253898364"),
    CardSpec("citizen-wrong-usage", "citizen", "王承義", "wrong-usage", id_number="B183824679"),
    CardSpec("business-bank", "business", "示範商業銀行股份有限公司", business_no="23582637"),
    CardSpec("organisation-assoc", "organisation", "示範縣社區發展協會", org_oid="2.16.886.101.99100.1"),
    CardSpec(
        "gov-clerk-card", "government", "張稅務", org_oid="2.16.886.101.99001.20", agency_code="TAX",
        username="clerk.card",
    ),
    CardSpec(
        "gov-clerk-social", "government", "李社福", org_oid="2.16.886.101.99001.30", agency_code="SOCIAL",
        username="clerk.social",
    ),
)  # fmt: skip
KIND_CA = {kind: ca for ca, (_ou, _cn, kind, _off) in CAS.items()}


# --- small helpers ------------------------------------------------------------------------


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _load_key(path: Path):
    return serialization.load_pem_private_key(path.read_bytes(), None)


def _usage(**on: bool) -> x509.KeyUsage:
    names = (
        "digital_signature content_commitment key_encipherment data_encipherment key_agreement "
        "key_cert_sign crl_sign encipher_only decipher_only"
    ).split()
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


CA_USAGE = _usage(key_cert_sign=True, crl_sign=True)
SIGN_USAGE = _usage(digital_signature=True, content_commitment=True)
ENC_USAGE = _usage(key_encipherment=True)


def ca_name(ou: str, cn: str, org: str = DEMO_O) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def subject_directory_attributes(spec: CardSpec) -> bytes:
    """DER of the 2.5.29.9 extension value: the card's identifying data, as PrintableStrings."""
    attrs = []
    if spec.id_number:
        attrs.append((ID_LAST4, spec.id_number[-4:]))
    if spec.business_no:
        attrs.append((BUSINESS_NO, spec.business_no))
    if spec.org_oid:
        attrs.append((ORG_OID, spec.org_oid))
    return asn1_x509.Attributes(
        [asn1_x509.Attribute({"type": t, "values": [asn1_core.PrintableString(v)]}) for t, v in attrs]
    ).dump()


def index_serial(serial: int) -> str:
    """A serial number as openssl writes it in an index file (BN_bn2hex: upper case, whole bytes)."""
    text = format(serial, "X")
    return "0" + text if len(text) % 2 else text


def _index_time(when: datetime.datetime) -> str:
    return when.astimezone(UTC).strftime("%y%m%d%H%M%SZ")


# --- building -------------------------------------------------------------------------------


class _Issuer:
    def __init__(self, cert: x509.Certificate, key):
        self.cert, self.key = cert, key


def _new_key(key_size: int):
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _issue(
    subject: x509.Name,
    key,
    issuer: _Issuer | None,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    usage: x509.KeyUsage,
    *,
    ca: bool = False,
    extensions: tuple = (),
) -> x509.Certificate:
    public = key.public_key()
    issuer_cert = issuer.cert if issuer else None
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca and issuer else None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key() if issuer_cert else public),
            critical=False,
        )
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


def _distribution(ca: str, port_base: int) -> tuple:
    crl = x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url(ca, port_base))], None, None, None)]
    )
    aia = x509.AuthorityInformationAccess(
        [x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url(ca, port_base)))]
    )  # fmt: skip
    return ((crl, False), (aia, False))


def crl_url(ca: str, port_base: int) -> str:
    return f"http://127.0.0.1:{port_base}/crl/{ca}.crl"


def ocsp_port(ca: str, port_base: int) -> int:
    return port_base + CAS[ca][3]


def ocsp_url(ca: str, port_base: int) -> str:
    return f"http://127.0.0.1:{ocsp_port(ca, port_base)}/"


def _crl(issuer: _Issuer, revoked: list[int], now: datetime.datetime) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - datetime.timedelta(hours=1))
        .next_update(now + 7 * DAY)
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - DAY)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(issuer.key, hashes.SHA256())


class _Writer:
    def __init__(self, out: Path, pin: str, port_base: int, now: datetime.datetime, key_size: int):
        self.out, self.pin, self.port_base, self.now, self.key_size = out, pin, port_base, now, key_size

    def p12(self, path: Path, name: str, key, cert: x509.Certificate, chain: list[x509.Certificate]) -> None:
        encryption = serialization.BestAvailableEncryption(self.pin.encode())
        _write(path, pkcs12.serialize_key_and_certificates(name.encode(), key, cert, chain, encryption), private=True)

    def ca_files(self, name: str, issuer: _Issuer, folder: str = "cas") -> None:
        _write(self.out / folder / f"{name}.pem", _pem(issuer.cert))
        _write(self.out / "private" / f"{name}.key", _key_pem(issuer.key), private=True)


def _make(out: Path, w: _Writer) -> dict:
    now = w.now
    root_key = _new_key(w.key_size)
    root = _Issuer(
        _issue(ca_name(ROOT_OU, ROOT_CN), root_key, None, now - DAY, now + 7300 * DAY, CA_USAGE, ca=True), root_key
    )
    w.ca_files("grca", root, "root")
    _write(out / "roots.pem", _pem(root.cert))
    cas: dict[str, _Issuer] = {}
    for ca, (ou, cn, _kind, _off) in CAS.items():
        key = _new_key(w.key_size)
        arl = x509.CRLDistributionPoints(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url("grca", w.port_base))], None, None, None)]
        )
        cert = _issue(ca_name(ou, cn), key, root, now - DAY, now + 3650 * DAY, CA_USAGE, ca=True,
                      extensions=((arl, False),))  # fmt: skip
        cas[ca] = _Issuer(cert, key)
        w.ca_files(ca, cas[ca])
    _write(out / "cas" / "bundle.pem", b"".join(_pem(c.cert) for c in cas.values()))
    # The wrong issuer: a root nobody configured, with a MOICA look-alike below it.
    other_key, fake_key = _new_key(w.key_size), _new_key(w.key_size)
    other = _Issuer(
        _issue(ca_name(ROOT_OU, "不受信任的根憑證 Untrusted Root", UNTRUSTED_O), other_key, None, now - DAY,
               now + 3650 * DAY, CA_USAGE, ca=True),
        other_key,
    )  # fmt: skip
    fake = _Issuer(
        _issue(ca_name(CAS["moica"][0], "冒名內政部憑證管理中心 Impostor MOICA", UNTRUSTED_O), fake_key, other,
               now - DAY, now + 3650 * DAY, CA_USAGE, ca=True),
        fake_key,
    )  # fmt: skip
    w.ca_files("untrusted-root", other, "untrusted")
    w.ca_files("untrusted-moica", fake, "untrusted")

    responders = {}
    for ca, issuer in cas.items():
        key = _new_key(w.key_size)
        cert = _issue(
            ca_name(CAS[ca][0], f"{CAS[ca][1]} OCSP"), key, issuer, now - DAY, now + 3650 * DAY,
            _usage(digital_signature=True),
            extensions=((x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False),
                        (x509.OCSPNoCheck(), False)),
        )  # fmt: skip
        _write(out / "ocsp" / ca / "responder.pem", _pem(cert))
        _write(out / "ocsp" / ca / "responder.key", _key_pem(key), private=True)
        _write(out / "ocsp" / ca / "ca.pem", _pem(issuer.cert))
        responders[ca] = cert

    # The platform's TLS server certificate, from GCA as the government's SSL certificates are.
    tls_key = _new_key(w.key_size)
    tls = _issue(
        x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "TW"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "示範縣政府 Demo County Government"), x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),  # noqa: E501
        tls_key, cas["gca"], now - DAY, now + 397 * DAY, _usage(digital_signature=True, key_encipherment=True),
        extensions=(
            (x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),  # noqa: E501
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            *_distribution("gca", w.port_base),
        ),
    )  # fmt: skip
    _write(out / "tls" / "server.crt", _pem(tls))
    _write(out / "tls" / "server.key", _key_pem(tls_key), private=True)
    _write(out / "tls" / "chain.pem", _pem(tls) + _pem(cas["gca"].cert))

    cards = []
    for spec in CARDS:
        cards.append(_card(out, w, spec, cas, root, fake, other))
    return {
        "format": FORMAT,
        "pin": w.pin,
        "port_base": w.port_base,
        "created": now.isoformat(),
        "roots": "roots.pem",
        "bundle": "cas/bundle.pem",
        "cas": {ca: f"cas/{ca}.pem" for ca in CAS},
        "untrusted_roots": "untrusted/untrusted-root.pem",
        "tls": {"cert": "tls/server.crt", "key": "tls/server.key", "chain": "tls/chain.pem"},
        "crl_url": f"http://127.0.0.1:{w.port_base}/crl/",
        "arl": {"der": "crl/grca.crl", "pem": "crl/grca.crl.pem", "url": crl_url("grca", w.port_base)},
        "crls": {ca: {"der": f"crl/{ca}.crl", "pem": f"crl/{ca}.crl.pem", "url": crl_url(ca, w.port_base)} for ca in CAS},
        "ocsp": [
            {"ca": ca, "port": ocsp_port(ca, w.port_base), "url": ocsp_url(ca, w.port_base),
             "index": f"ocsp/{ca}/index.txt"}
            for ca in CAS
        ],
        "cards": cards,
    }  # fmt: skip


def _card(out: Path, w: _Writer, spec: CardSpec, cas, root: _Issuer, fake: _Issuer, other: _Issuer) -> dict:
    now = w.now
    ca = KIND_CA[spec.kind]
    if spec.state == "wrong-issuer":
        issuer, chain = fake, [fake.cert, other.cert]
    else:
        issuer, chain = cas[ca], [cas[ca].cert, root.cert]
    not_before, not_after = now - DAY, now + 5 * 365 * DAY
    if spec.state == "expired":
        not_before, not_after = now - 5 * 365 * DAY, now - 30 * DAY
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "TW")]
    if spec.kind in ("government", "organisation"):
        attrs.append(
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME,
                spec.holder if spec.kind == "organisation" else "示範縣政府 Demo County Government",
            )
        )
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, spec.holder))
    card_no = hashlib.sha256(spec.name.encode()).hexdigest()[:16].upper()
    attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, card_no))
    subject = x509.Name(attrs)
    sda = (x509.UnrecognizedExtension(ObjectIdentifier(SDA), subject_directory_attributes(spec)), False)
    extensions = (sda, *_distribution(ca, w.port_base))
    folder = out / "cards" / spec.name
    made = {}
    for which, usage in (("sign", SIGN_USAGE), ("enc", ENC_USAGE)):
        if spec.state == "wrong-usage" and which == "sign":
            continue  # this card has only its encryption certificate, and signs with it
        key = _new_key(w.key_size)
        cert = _issue(subject, key, issuer, not_before, not_after, usage, extensions=extensions)
        _write(folder / f"{which}.pem", _pem(cert))
        w.p12(folder / f"{which}.p12", f"{spec.name}-{which}", key, cert, chain)
        made[which] = cert
    sign_file = "enc" if spec.state == "wrong-usage" else "sign"
    return {
        "name": spec.name,
        "kind": spec.kind,
        "ca": ca,
        "holder": spec.holder,
        "card_no": card_no,
        "id_number": spec.id_number,
        "business_no": spec.business_no,
        "org_oid": spec.org_oid,
        "agency_code": spec.agency_code,
        "username": spec.username,
        "state": spec.state,
        "sign": f"cards/{spec.name}/{sign_file}.p12",
        "sign_cert": f"cards/{spec.name}/{sign_file}.pem",
        "enc": f"cards/{spec.name}/enc.p12",
        "enc_cert": f"cards/{spec.name}/enc.pem",
        "serials": {which: index_serial(c.serial_number) for which, c in made.items()},
        "not_after": made["enc"].not_valid_after_utc.isoformat(),
    }


# --- revocation data (written on every run) ---------------------------------------------------


def _publish(out: Path, manifest: dict, now: datetime.datetime) -> None:
    """Write the CRLs and the OCSP index files from the manifest: revoked cards' serials are listed."""
    for ca in CAS:
        issuer = _Issuer(_load_cert(out / "cas" / f"{ca}.pem"), _load_key(out / "private" / f"{ca}.key"))
        lines, revoked = [], []
        for card in manifest["cards"]:
            if card["ca"] != ca or card["state"] == "wrong-issuer":
                continue
            for which in card["serials"]:
                cert = _load_cert(out / "cards" / card["name"] / f"{which}.pem")
                serial = index_serial(cert.serial_number)
                expiry = _index_time(cert.not_valid_after_utc)
                label = f"/CN={card['name']}-{which}"
                if card["state"] == "revoked":
                    revoked.append(cert.serial_number)
                    revoked_at = f"{_index_time(now - DAY)},keyCompromise"
                    lines.append("\t".join(("R", expiry, revoked_at, serial, "unknown", label)))
                else:
                    lines.append("\t".join(("V", expiry, "", serial, "unknown", label)))
        if ca == "gca":
            tls = _load_cert(out / "tls" / "server.crt")
            expiry, serial = _index_time(tls.not_valid_after_utc), index_serial(tls.serial_number)
            lines.append("\t".join(("V", expiry, "", serial, "unknown", "/CN=localhost")))
        _write(out / "ocsp" / ca / "index.txt", ("\n".join(lines) + "\n").encode())
        _write(out / "ocsp" / ca / "index.txt.attr", b"unique_subject = no\n")
        crl = _crl(issuer, revoked, now)
        _write(out / "crl" / f"{ca}.crl", crl.public_bytes(serialization.Encoding.DER))
        _write(out / "crl" / f"{ca}.crl.pem", crl.public_bytes(serialization.Encoding.PEM))
    root = _Issuer(_load_cert(out / "root" / "grca.pem"), _load_key(out / "private" / "grca.key"))
    arl = _crl(root, [], now)
    _write(out / "crl" / "grca.crl", arl.public_bytes(serialization.Encoding.DER))
    _write(out / "crl" / "grca.crl.pem", arl.public_bytes(serialization.Encoding.PEM))


def _reusable(out: Path, port_base: int, now: datetime.datetime) -> dict | None:
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if manifest.get("format") != FORMAT or manifest.get("port_base") != port_base:
        return None
    if [c.get("name") for c in manifest.get("cards", [])] != [s.name for s in CARDS]:
        return None
    soon = now + 30 * DAY
    tls = out / "tls" / "server.crt"
    if not tls.exists() or _load_cert(tls).not_valid_after_utc < soon:
        return None
    for card in manifest["cards"]:
        if card["state"] != "expired" and datetime.datetime.fromisoformat(card["not_after"]) < soon:
            return None
    return manifest


def _repin(out: Path, manifest: dict, pin: str) -> None:
    old = manifest["pin"].encode()
    w = _Writer(out, pin, manifest["port_base"], datetime.datetime.now(UTC), 2048)
    for card in manifest["cards"]:
        for which in card["serials"]:
            path = out / "cards" / card["name"] / f"{which}.p12"
            key, cert, chain = pkcs12.load_key_and_certificates(path.read_bytes(), old)
            w.p12(path, f"{card['name']}-{which}", key, cert, chain)
    manifest["pin"] = pin


def make_cardpki(
    outdir: str | os.PathLike,
    pin: str = DEFAULT_PIN,
    port_base: int = DEFAULT_PORT_BASE,
    *,
    now: datetime.datetime | None = None,
    key_size: int = 2048,
) -> dict:
    """Create (or read back and refresh) the demo card PKI in `outdir`; returns the manifest (cards.json)."""
    if not pin:
        raise ValueError("the cards need a PIN")
    if not 1024 <= port_base <= 65530:
        raise ValueError("the port base must leave room for five ports below 65536")
    out = Path(outdir)
    now = (now or datetime.datetime.now(UTC)).replace(microsecond=0)
    manifest = _reusable(out, port_base, now)
    if manifest is None:
        for part in ("root", "cas", "private", "untrusted", "ocsp", "crl", "tls", "cards"):
            shutil.rmtree(out / part, ignore_errors=True)
        manifest = _make(out, _Writer(out, pin, port_base, now, key_size))
    elif manifest["pin"] != pin:
        _repin(out, manifest, pin)
    _publish(out, manifest, now)
    _write(out / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2).encode())
    return manifest


def set_revoked(outdir: str | os.PathLike, name: str, revoked: bool = True, *, now=None) -> dict:
    """Revoke a card (both its certificates) as its CA would, or take it off the lists again (demo only:
    a real CA never does); rewrites the CRLs and the OCSP index files, which the running responders read
    again at their next request. Returns the manifest; ValueError for an unknown or unrevocable card."""
    out = Path(outdir)
    manifest = load_manifest(out)
    card = next((c for c in manifest["cards"] if c["name"] == name), None)
    if card is None:
        raise ValueError(f"no card named {name!r}")
    if card["state"] not in ("good", "revoked"):
        raise ValueError(f"{name} is {card['state']}: only a good card can be revoked")
    card["state"] = "revoked" if revoked else "good"
    _publish(out, manifest, (now or datetime.datetime.now(UTC)).replace(microsecond=0))
    _write(out / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2).encode())
    _nudge(out, manifest, card)
    return manifest


def _nudge(out: Path, manifest: dict, card: dict) -> None:
    """`openssl ocsp` looks at its index file after answering a request, before taking the next: one
    request now makes the next one (the caller's) see the change. Nothing if the responder is not running."""
    url = next(o["url"] for o in manifest["ocsp"] if o["ca"] == card["ca"])
    cert = _load_cert(out / card["sign_cert"])
    issuer = _load_cert(out / "cas" / f"{card['ca']}.pem")
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    request = urllib.request.Request(url, data=der, headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()
    except OSError:
        pass


def load_manifest(outdir: str | os.PathLike) -> dict:
    """cards.json of a directory `make_cardpki` wrote; FileNotFoundError if none."""
    return json.loads((Path(outdir) / MANIFEST).read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.simulators.cardpki", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--pin", default=os.environ.get("DEMO_CARD_PIN", DEFAULT_PIN), help="the cards' PIN")
    parser.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE, help="CRL port; OCSP on the next 4")
    parser.add_argument("--revoke", action="append", default=[], metavar="CARD", help="revoke this card")
    parser.add_argument("--reinstate", action="append", default=[], metavar="CARD", help="un-revoke this card")
    args = parser.parse_args(argv)
    try:
        manifest = make_cardpki(args.outdir, args.pin, args.port_base)
        for name in args.revoke:
            manifest = set_revoked(args.outdir, name, True)
        for name in args.reinstate:
            manifest = set_revoked(args.outdir, name, False)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"roots: {args.outdir / manifest['roots']}  CAs: {args.outdir / manifest['bundle']}")
    print(f"TLS: {args.outdir / manifest['tls']['chain']}, {args.outdir / manifest['tls']['key']}")
    print(f"CRLs: {manifest['crl_url']}  OCSP: {' '.join(o['url'] for o in manifest['ocsp'])}")
    for card in manifest["cards"]:
        print(f"  {card['name']:<22} {card['kind']:<13} {card['state']:<13} {args.outdir / card['sign']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

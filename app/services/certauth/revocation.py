"""Is a card revoked? Asked of its CA's OCSP responder, answered from the CRL when the
responder cannot be reached or gives no usable answer, and refused when neither can
tell (fail closed).

OCSP answers are kept per process until their nextUpdate (and no longer than
CERT_OCSP_CACHE_SECONDS), so a card signing in again within that time costs no
round trip; CRLs are kept until their nextUpdate.
"""

from __future__ import annotations

import datetime
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from app.services.certauth.refusals import MESSAGES_CA, CardRefused

log = logging.getLogger(__name__)
MAX_OCSP_BYTES = 256 * 1024
MAX_CRL_BYTES = 64 * 1024 * 1024
CLOCK_SKEW = datetime.timedelta(minutes=5)
MAX_CACHED = 20000


@dataclass(frozen=True)
class _Answer:
    revoked: bool
    until: datetime.datetime


_lock = threading.Lock()
_ocsp_cache: dict[tuple[bytes, int], _Answer] = {}
_crl_cache: dict[str, tuple[x509.CertificateRevocationList, datetime.datetime, object]] = {}
# (id of a CRL, issuer fingerprint) -> (that CRL, its signature is the issuer's)
_crl_verdicts: dict[tuple[int, bytes], tuple[x509.CertificateRevocationList, bool]] = {}


def clear_cache() -> None:
    """Forget every cached OCSP answer and CRL (tests; an operator after a CA incident)."""
    with _lock:
        _ocsp_cache.clear()
        _crl_cache.clear()
        _crl_verdicts.clear()


def _remember(key, answer: _Answer, now: datetime.datetime) -> None:
    with _lock:
        if len(_ocsp_cache) >= MAX_CACHED:
            for k in [k for k, v in _ocsp_cache.items() if v.until <= now]:
                del _ocsp_cache[k]
            if len(_ocsp_cache) >= MAX_CACHED:
                _ocsp_cache.clear()
        _ocsp_cache[key] = answer


def _verify_signed_by(public_key, signature: bytes, data: bytes, algorithm) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _responder(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime.datetime):
    """The certificate whose key signed the answer: the CA itself, or one the CA delegated OCSP signing to."""

    def named(cert: x509.Certificate) -> bool:
        if response.responder_name is not None:
            return cert.subject == response.responder_name
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest == response.responder_key_hash

    if named(issuer):
        return issuer
    for cert in response.certificates:
        if not named(cert) or not _issued_by(cert, issuer):
            continue
        if not cert.not_valid_before_utc - CLOCK_SKEW <= now <= cert.not_valid_after_utc + CLOCK_SKEW:
            continue
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            return cert
    return None


def _ask_ocsp(url: str, cert: x509.Certificate, issuer: x509.Certificate, timeout: float, now) -> _Answer | str:
    """The responder's answer for `cert`, or why there is none that can be used."""
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            with client.stream(
                "POST",
                url,
                content=request.public_bytes(serialization.Encoding.DER),
                headers={"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"},
            ) as answer:
                if answer.status_code != 200:
                    return f"HTTP {answer.status_code}"
                body = b""
                for chunk in answer.iter_bytes():
                    body += chunk
                    if len(body) > MAX_OCSP_BYTES:
                        return "answer too large"
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    try:
        response = ocsp.load_der_ocsp_response(body)
    except ValueError:
        return "not an OCSP response"
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return f"status {response.response_status.name}"
    signer = _responder(response, issuer, now)
    if signer is None or not _verify_signed_by(
        signer.public_key(), response.signature, response.tbs_response_bytes, response.signature_hash_algorithm
    ):
        return "not signed by the card's CA or a responder it delegated to"
    for single in response.responses:
        if single.serial_number != cert.serial_number or single.issuer_key_hash != request.issuer_key_hash:
            continue
        if single.issuer_name_hash != request.issuer_name_hash:
            continue
        this_update, next_update = single.this_update_utc, single.next_update_utc
        if this_update > now + CLOCK_SKEW or (next_update is not None and next_update < now - CLOCK_SKEW):
            return "answer not current"
        until = next_update or now  # no nextUpdate: good for this check only
        if single.certificate_status == ocsp.OCSPCertStatus.GOOD:
            return _Answer(False, until)
        if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            return _Answer(True, until)
        return "status unknown"  # the responder cannot vouch; the CRL may
    return "no answer about this certificate"


def _read_crl(source: str, timeout: float) -> bytes | None:
    if source.startswith(("http://", "https://")):
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
                with client.stream("GET", source) as answer:
                    if answer.status_code != 200:
                        return None
                    body = bytearray()
                    for chunk in answer.iter_bytes():
                        body += chunk
                        if len(body) > MAX_CRL_BYTES:
                            return None
                    return bytes(body)
        except httpx.HTTPError:
            return None
    try:
        return Path(source).read_bytes()
    except OSError:
        return None


def _load_crl(source: str, timeout: float, now: datetime.datetime):
    """A CRL from a URL or a file, kept until its nextUpdate (a file: until it changes); None if unreadable."""
    try:
        stamp = None if source.startswith(("http://", "https://")) else Path(source).stat().st_mtime_ns
    except OSError:
        return None
    with _lock:
        cached = _crl_cache.get(source)
    if cached and cached[1] > now and cached[2] == stamp:
        return cached[0]
    data = _read_crl(source, timeout)
    if not data:
        return None
    try:
        crl = x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_crl(data)
    except ValueError:
        return None
    until = crl.next_update_utc or now
    with _lock:
        _crl_cache[source] = (crl, until, stamp)
    return crl


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """Is the CRL signed by this CA? Remembered with the kept CRL: a large one costs a hash of all of it."""
    key = (id(crl), issuer.fingerprint(hashes.SHA256()))
    with _lock:
        kept = _crl_verdicts.get(key)
    if kept is not None and kept[0] is crl:
        return kept[1]
    valid = crl.is_signature_valid(issuer.public_key())
    with _lock:
        if len(_crl_verdicts) > 1000:
            _crl_verdicts.clear()
        _crl_verdicts[key] = (crl, valid)  # holding the CRL: its id stays its own
    return valid


def _crl_answer(sources: list[str], cert, issuer, timeout: float, now) -> _Answer | None:
    for source in sources:
        crl = _load_crl(source, timeout, now)
        if crl is None or crl.issuer != cert.issuer or not _signed_by(crl, issuer):
            continue
        if crl.next_update_utc is None or crl.next_update_utc < now - CLOCK_SKEW:
            continue  # stale: says nothing about today
        if crl.last_update_utc > now + CLOCK_SKEW:
            continue
        return _Answer(crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None, now)
    return None


def _urls(cert: x509.Certificate, kind) -> list[str]:
    out = []
    try:
        if kind == "ocsp":
            for desc in cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value:
                if desc.access_method == x509.AuthorityInformationAccessOID.OCSP:
                    out.append(desc.access_location.value)
        else:
            for point in cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value:
                out.extend(n.value for n in point.full_name or [] if isinstance(n, x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        pass
    return [u for u in out if isinstance(u, str) and u.startswith(("http://", "https://"))]


def check_revocation(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    timeout: float,
    ocsp_url: str = "",
    crl_paths: tuple[str, ...] = (),
    cache_seconds: float = 300,
    now: datetime.datetime,
) -> str:
    """How the card was found not revoked: "ocsp-cache", "ocsp" or "crl".

    Raises CardRefused("revoked") or, when neither OCSP nor a CRL answered, CardRefused("revocation_unknown").
    """
    key = (issuer.fingerprint(hashes.SHA256()), cert.serial_number)
    with _lock:
        cached = _ocsp_cache.get(key)
    if cached is not None and cached.until > now:
        if cached.revoked:
            raise CardRefused("revoked")
        return "ocsp-cache"
    ocsp_urls = [ocsp_url] if ocsp_url else _urls(cert, "ocsp")
    for url in ocsp_urls:
        answer = _ask_ocsp(url, cert, issuer, timeout, now)
        if isinstance(answer, str):
            log.warning("OCSP responder %s gave no usable answer: %s; trying the CRL", url, answer)
            continue
        until = min(answer.until, now + datetime.timedelta(seconds=max(cache_seconds, 0)))
        if until > now:  # kept until its nextUpdate, and no longer than cache_seconds
            _remember(key, _Answer(answer.revoked, until), now)
        if answer.revoked:
            raise CardRefused("revoked")
        return "ocsp"
    crl_sources = [*crl_paths, *_urls(cert, "crl")]
    answer = _crl_answer(crl_sources, cert, issuer, timeout, now)
    if answer is not None:
        if answer.revoked:
            raise CardRefused("revoked")
        return "crl"
    log.error("a card was refused: neither OCSP (%s) nor a CRL (%s) said whether it is revoked", ocsp_urls, crl_sources)
    raise CardRefused(
        "revocation_unknown",
        ocsp=", ".join(ocsp_urls) or "-",
        crl=", ".join(crl_sources) or "-",
    )


def check_authority(
    ca: x509.Certificate,
    issuer: x509.Certificate,
    *,
    timeout: float,
    crl_paths: tuple[str, ...] = (),
    now: datetime.datetime,
) -> None:
    """Is an issuing CA revoked by the CA above it (GRCA's authority revocation list)? Asked only of a CA
    certificate that names a CRL distribution point or of the CERT_CRL_PATHS files; with a distribution
    point named and no CRL to be had, refused (fail closed).

    Raises CardRefused("revoked") or CardRefused("revocation_unknown").
    """
    named = _urls(ca, "crl")
    answer = _crl_answer([*crl_paths, *named], ca, issuer, timeout, now)
    if answer is not None:
        if answer.revoked:
            raise CardRefused("revoked", MESSAGES_CA["revoked"])
        return
    if named:
        log.error("a card was refused: the revocation list of its CA's issuer (%s) could not be read", named)
        raise CardRefused("revocation_unknown", MESSAGES_CA["revocation_unknown"], crl=", ".join(named))

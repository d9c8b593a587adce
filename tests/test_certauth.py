"""Card checks (app/services/certauth): a PKCS#7 sign-in signature made as the local
signing component makes it, checked against the demo card PKI with its real
`openssl ocsp` responders and CRLs; every refusal, and the OCSP cache."""

from __future__ import annotations

import datetime
import subprocess

import pytest
from asn1crypto import cms
from babel.support import Translations
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.services import certauth
from app.services.certauth import CardRefused, Settings, check_certificate, verify_signature
from tests.cards import card, card_key, card_pki, free_port_base, responders, sign_pkcs7

NONCE = b"challenge:3f9a1c0e5b7d4e2a9c8b6f1d0e3a5c7b"


@pytest.fixture
def settings():
    d = card_pki()["dir"]
    return Settings(trust_roots=str(d / "roots.pem"), ca_bundle=str(d / "cas" / "bundle.pem"), ocsp_timeout=5)


@pytest.fixture(autouse=True)
def services():
    """Every test starts with the responders and the CRL server up and nothing cached."""
    running = responders()
    certauth.clear_cache()
    yield running
    responders()
    certauth.clear_cache()


def _refused(reason: str, call, *args, **kwargs) -> CardRefused:
    with pytest.raises(CardRefused) as err:
        call(*args, **kwargs)
    assert err.value.reason == reason, str(err.value)
    return err.value


def _der(path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)


def test_a_good_citizen_card_signs_in_and_the_card_says_who_it_is(settings):
    found = verify_signature(sign_pkcs7("citizen-wang", NONCE), NONCE, settings=settings)
    assert (found.kind, found.holder, found.id_last4, found.business_no) == ("citizen", "王小明", "6789", None)
    cert = x509.load_pem_x509_certificate(card("citizen-wang")["sign_cert"].read_bytes())
    assert found.serial == format(cert.serial_number, "X")
    assert found.der == cert.public_bytes(serialization.Encoding.DER)
    assert len(found.fingerprint) == 64 and found.not_after > found.not_before
    assert "內政部憑證管理中心" in found.issuer
    assert found.checked_by == "ocsp"
    assert "王小明" not in repr(found)
    # Detached (the content sent beside the signature) is the same sign-in.
    assert (
        verify_signature(sign_pkcs7("citizen-wang", NONCE, detached=True), NONCE, settings=settings).holder == "王小明"
    )


@pytest.mark.parametrize(
    ("name", "kind", "field"),
    [
        ("business-bank", "business", "business_no"),
        ("organisation-assoc", "organisation", "org_oid"),
        ("gov-clerk-card", "government", "org_oid"),
    ],
)
def test_business_organisation_and_government_cards_carry_their_numbers(settings, name, kind, field):
    found = verify_signature(sign_pkcs7(name, NONCE), NONCE, settings=settings)
    assert found.kind == kind
    assert getattr(found, field) == card(name)[field] and found.id_last4 is None


def test_a_card_from_an_issuer_outside_the_roots_is_refused_even_when_it_calls_itself_moica(settings):
    refusal = _refused("untrusted", verify_signature, sign_pkcs7("citizen-wrong-issuer", NONCE), NONCE,
                       settings=settings)  # fmt: skip
    assert "trust" in str(refusal)


def test_an_expired_card_is_refused(settings):
    _refused("expired", verify_signature, sign_pkcs7("citizen-expired", NONCE), NONCE, settings=settings)


def test_a_card_revoked_is_refused_by_the_ocsp_answer(settings, services):
    services.stop_crl()  # the answer can only come from OCSP
    _refused("revoked", verify_signature, sign_pkcs7("citizen-revoked", NONCE), NONCE, settings=settings)


def test_with_the_ocsp_responder_down_the_crl_decides(settings, services, caplog):
    services.stop_ocsp()
    _refused("revoked", verify_signature, sign_pkcs7("citizen-revoked", NONCE), NONCE, settings=settings)
    found = verify_signature(sign_pkcs7("citizen-lin", NONCE), NONCE, settings=settings)
    assert (found.holder, found.checked_by) == ("林美惠", "crl")
    # The operators hear of it (the responder's address, nothing of the holder).
    moica = next(o["url"] for o in card_pki()["ocsp"] if o["ca"] == "moica")
    warnings = [r.getMessage() for r in caplog.records if r.name == "app.services.certauth.revocation"]
    assert any(moica in w and "unreachable" in w for w in warnings), warnings
    assert not any("林美惠" in w or found.serial in w for w in warnings)


def test_with_ocsp_and_crl_both_unreachable_sign_in_is_refused_naming_both(settings, services):
    services.stop_ocsp()
    services.stop_crl()
    refusal = _refused("revocation_unknown", verify_signature, sign_pkcs7("citizen-wang", NONCE), NONCE,
                       settings=settings)  # fmt: skip
    pki = card_pki()
    moica = next(o for o in pki["ocsp"] if o["ca"] == "moica")
    text = str(refusal)
    assert "OCSP" in text and moica["url"] in text
    assert pki["crls"]["moica"]["url"] in text
    assert refusal.status == 503


def test_a_local_crl_file_stands_in_when_the_crl_server_is_down(settings, services):
    services.stop_ocsp()
    services.stop_crl()
    # The county's copies of the CA's CRL and of the root's list of revoked CAs.
    crl = card_pki()["dir"] / "crl"
    local = Settings(**{**settings.__dict__, "crl_paths": (str(crl / "moica.crl"), str(crl / "grca.crl"))})
    assert verify_signature(sign_pkcs7("citizen-wang", NONCE), NONCE, settings=local).checked_by == "crl"
    _refused("revoked", verify_signature, sign_pkcs7("citizen-revoked", NONCE), NONCE, settings=local)


def test_another_cas_ocsp_answer_is_not_taken(settings, services):
    """An answer signed by a responder the card's CA never delegated to counts for nothing: the CRL decides."""
    gca = next(o["url"] for o in card_pki()["ocsp"] if o["ca"] == "gca")
    foreign = Settings(**{**settings.__dict__, "ocsp_url": gca})
    assert verify_signature(sign_pkcs7("citizen-wang", NONCE), NONCE, settings=foreign).checked_by == "crl"
    services.stop_crl()
    certauth.clear_cache()  # the CRL read a moment ago is kept until its nextUpdate
    _refused("revocation_unknown", verify_signature, sign_pkcs7("citizen-lin", NONCE), NONCE, settings=foreign)


def test_the_encryption_certificate_cannot_sign_in(settings):
    _refused("wrong_usage", verify_signature, sign_pkcs7("citizen-wrong-usage", NONCE), NONCE, settings=settings)
    # A good card's encryption certificate, used to sign, is refused too.
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import pkcs7

    key, cert, _ = card_key("citizen-wang", "enc")
    der = (
        pkcs7.PKCS7SignatureBuilder().set_data(NONCE).add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )  # fmt: skip
    _refused("wrong_usage", verify_signature, der, NONCE, settings=settings)


def test_a_signature_over_other_content_is_refused(settings):
    other = b"challenge:somebody-elses-nonce"
    _refused("wrong_content", verify_signature, sign_pkcs7("citizen-wang", other), NONCE, settings=settings)
    _refused("wrong_content", verify_signature, sign_pkcs7("citizen-wang", other, detached=True), NONCE,
             settings=settings)  # fmt: skip


def _tampered(der: bytes, change) -> bytes:
    info = cms.ContentInfo.load(der)
    change(info["content"])
    return info.dump(force=True)


def test_a_pkcs7_without_certificates_is_refused(settings):
    def drop(signed):
        signed["certificates"] = None

    _refused("no_certificate", verify_signature, _tampered(sign_pkcs7("citizen-wang", NONCE), drop), NONCE,
             settings=settings)  # fmt: skip


def test_a_bad_signature_is_refused(settings):
    def flip(signed):
        value = bytearray(signed["signer_infos"][0]["signature"].native)
        value[10] ^= 0x01
        signed["signer_infos"][0]["signature"] = bytes(value)

    _refused("bad_signature", verify_signature, _tampered(sign_pkcs7("citizen-wang", NONCE), flip), NONCE,
             settings=settings)  # fmt: skip

    def swap_content(signed):
        signed["encap_content_info"]["content"] = NONCE + b"!"

    # Content changed after signing, the expected one attached instead: the digest no longer matches.
    altered = _tampered(sign_pkcs7("citizen-wang", NONCE + b"!"), lambda s: None)
    assert verify_signature(altered, NONCE + b"!", settings=settings)
    forged = _tampered(sign_pkcs7("citizen-wang", b"other"), swap_content)
    _refused("bad_signature", verify_signature, forged, NONCE + b"!", settings=settings)


@pytest.mark.parametrize("data", [b"", b"not a signature", b"\x30\x03\x02\x01\x01", b"\x30" * 70000])
def test_garbage_is_refused_as_malformed(settings, data):
    _refused("malformed", verify_signature, data, NONCE, settings=settings)


def test_an_ocsp_answer_is_cached_until_its_next_update(settings, services):
    signature = sign_pkcs7("citizen-wang", NONCE)
    assert verify_signature(signature, NONCE, settings=settings).checked_by == "ocsp"
    services.stop_ocsp()
    services.stop_crl()
    assert verify_signature(signature, NONCE, settings=settings).checked_by == "ocsp-cache"
    # A revoked answer is kept as well: refused without asking again.
    certauth.clear_cache()
    responders()
    _refused("revoked", verify_signature, sign_pkcs7("citizen-revoked", NONCE), NONCE, settings=settings)
    services.stop_ocsp()
    services.stop_crl()
    _refused("revoked", verify_signature, sign_pkcs7("citizen-revoked", NONCE), NONCE, settings=settings)
    # After the answer's nextUpdate (the responders say 10 minutes) it counts no more: fail closed.
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=30)
    _refused("revocation_unknown", verify_signature, signature, NONCE, settings=settings, now=later)


def _openssl_sign(tmp_path, *args: str) -> bytes:
    key, cert, cas = card_key("citizen-wang")
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_bytes(cas[0].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "tbs").write_bytes(NONCE)
    subprocess.run(["openssl", *args, "-in", "tbs", "-signer", "cert.pem", "-inkey", "key.pem", "-out", "p7.der"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=60)  # fmt: skip
    return (tmp_path / "p7.der").read_bytes()


@pytest.mark.parametrize(
    "command",
    [
        ("cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-outform", "DER", "-certfile", "ca.pem"),
        ("smime", "-sign", "-binary", "-nodetach", "-md", "sha256", "-outform", "DER"),
        ("cms", "-sign", "-binary", "-md", "sha256", "-outform", "DER"),  # detached
        ("cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-outform", "DER", "-noattr"),
    ],
)
def test_signatures_made_by_openssl_are_understood(settings, tmp_path, command):
    assert verify_signature(_openssl_sign(tmp_path, *command), NONCE, settings=settings).holder == "王小明"


def test_openssl_signature_without_certificates_is_refused(settings, tmp_path):
    der = _openssl_sign(tmp_path, "cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-outform", "DER",
                        "-nocerts")  # fmt: skip
    _refused("no_certificate", verify_signature, der, NONCE, settings=settings)


def test_check_certificate_alone_for_forwarded_client_certificates(settings):
    assert check_certificate(_der(card("gov-clerk-card")["sign_cert"]), settings=settings).kind == "government"
    pem = card("business-bank")["sign_cert"].read_bytes()
    assert check_certificate(pem, settings=settings).business_no == "23582637"
    _refused("wrong_usage", check_certificate, _der(card("citizen-wang")["enc_cert"]), settings=settings)
    _refused("untrusted", check_certificate, _der(card("citizen-wrong-issuer")["sign_cert"]), settings=settings)
    _refused("expired", check_certificate, _der(card("citizen-expired")["sign_cert"]), settings=settings)
    _refused("revoked", check_certificate, _der(card("citizen-revoked")["sign_cert"]), settings=settings)
    _refused("malformed", check_certificate, b"garbage", settings=settings)
    ca = _der(card_pki()["dir"] / "cas" / "moica.pem")
    _refused("untrusted", check_certificate, ca, settings=settings)
    # The TLS server certificate and an OCSP responder's are trusted, from GCA and MOICA, but no card's.
    _refused("wrong_usage", check_certificate, _der(card_pki()["dir"] / "tls" / "server.crt"), settings=settings)
    responder = _der(card_pki()["dir"] / "ocsp" / "moica" / "responder.pem")
    _refused("wrong_usage", check_certificate, responder, settings=settings)


def test_without_configured_roots_every_card_is_refused(tmp_path):
    nowhere = Settings(trust_roots=str(tmp_path / "missing.pem"))
    refusal = _refused("untrusted", verify_signature, sign_pkcs7("citizen-wang", NONCE), NONCE, settings=nowhere)
    assert "CERT_TRUST_ROOTS" in str(refusal)


def test_another_pkis_roots_trust_none_of_these_cards(tmp_path):
    from app.simulators.cardpki import make_cardpki

    make_cardpki(tmp_path, port_base=free_port_base())
    other = Settings(trust_roots=str(tmp_path / "roots.pem"), ca_bundle=str(tmp_path / "cas" / "bundle.pem"))
    _refused("untrusted", verify_signature, sign_pkcs7("citizen-wang", NONCE), NONCE, settings=other)


def test_every_refusal_reads_in_taiwanese_chinese():
    from app.services.certauth.refusals import MESSAGES_CA

    catalog = Translations.load("app/translations", ["zh_TW"])
    for reason, message in [*certauth.MESSAGES.items(), *MESSAGES_CA.items()]:
        assert catalog.gettext(str(message)) != str(message), reason


def test_flask_cards_check_reads_the_settings_and_checks_a_certificate(tmp_path):
    """Operators point CERT_TRUST_ROOTS / CERT_CA_BUNDLE at the roots; `flask cards check` tries a card with them."""
    import os
    import sys

    d = card_pki()["dir"]
    env = {
        **os.environ,
        "INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'platform.db'}",
        "CERT_TRUST_ROOTS": str(d / "roots.pem"),
        "CERT_CA_BUNDLE": str(d / "cas" / "bundle.pem"),
    }
    flask = [sys.executable, "-m", "flask", "--app", "run:app", "cards"]
    good = subprocess.run([*flask, "check", str(card("gov-clerk-card")["sign_cert"])], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "accepted: government card" in good.stdout and "張稅務" not in good.stdout
    bad = subprocess.run([*flask, "check", str(card("citizen-revoked")["sign_cert"])], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 1 and "refused (revoked)" in bad.stderr


def test_a_responder_that_never_answers_costs_the_timeout_then_the_crl_decides(settings):
    """A responder that takes the connection and says nothing must not hold the sign-in: the CRL answers."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    try:
        port = silent.getsockname()[1]
        hung = Settings(**{**settings.__dict__, "ocsp_url": f"http://127.0.0.1:{port}/", "ocsp_timeout": 0.5})
        assert verify_signature(sign_pkcs7("citizen-wang", NONCE), NONCE, settings=hung).checked_by == "crl"
        _refused("revoked", verify_signature, sign_pkcs7("citizen-revoked", NONCE), NONCE, settings=hung)
    finally:
        silent.close()


def test_sha1_signatures_and_two_signers_are_refused(settings, tmp_path):
    sha1 = _openssl_sign(tmp_path, "cms", "-sign", "-binary", "-nodetach", "-md", "sha1", "-outform", "DER")
    refusal = _refused("malformed", verify_signature, sha1, NONCE, settings=settings)
    assert "SHA-256" in str(refusal)
    key, cert, _ = card_key("citizen-lin")
    (tmp_path / "lin.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    two = _openssl_sign(tmp_path, "cms", "-sign", "-binary", "-nodetach", "-md", "sha256", "-outform", "DER",
                        "-signer", "lin.pem")  # fmt: skip
    assert len(cms.ContentInfo.load(two)["content"]["signer_infos"]) == 2
    _refused("malformed", verify_signature, two, NONCE, settings=settings)


def test_cert_ocsp_cache_seconds_bounds_how_long_an_answer_is_kept(settings, services):
    """A card revoked meanwhile is refused at most CERT_OCSP_CACHE_SECONDS late, whatever the nextUpdate."""
    signature = sign_pkcs7("citizen-wang", NONCE)
    short = Settings(**{**settings.__dict__, "ocsp_cache_seconds": 60})
    assert verify_signature(signature, NONCE, settings=short).checked_by == "ocsp"
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    assert verify_signature(signature, NONCE, settings=short, now=soon).checked_by == "ocsp-cache"
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=90)  # within nextUpdate (10 min)
    assert verify_signature(signature, NONCE, settings=short, now=later).checked_by == "ocsp"
    never = Settings(**{**settings.__dict__, "ocsp_cache_seconds": 0})
    certauth.clear_cache()
    assert verify_signature(signature, NONCE, settings=never).checked_by == "ocsp"
    assert verify_signature(signature, NONCE, settings=never).checked_by == "ocsp"


def test_a_crl_of_the_same_name_signed_by_another_key_vouches_for_nothing(settings, services, tmp_path):
    """Another demo PKI has CAs of the very same names: its MOICA CRL (not listing our revoked card) must not
    let that card in, however often asked (the signature's verdict is kept with the CRL, not by its name)."""
    from app.simulators.cardpki import make_cardpki

    make_cardpki(tmp_path, port_base=free_port_base())
    services.stop_ocsp()
    services.stop_crl()
    foreign = Settings(**{**settings.__dict__, "crl_paths": (str(tmp_path / "crl" / "moica.crl"),)})
    for _ in range(2):
        _refused("revocation_unknown", verify_signature, sign_pkcs7("citizen-revoked", NONCE), NONCE,
                 settings=foreign)  # fmt: skip
    both = Settings(
        **{**foreign.__dict__, "crl_paths": (*foreign.crl_paths, str(card_pki()["dir"] / "crl" / "moica.crl"))}
    )
    _refused("revoked", verify_signature, sign_pkcs7("citizen-revoked", NONCE), NONCE, settings=both)


def test_a_card_whose_ca_the_root_revoked_is_refused(settings, tmp_path):
    """GRCA's list of revoked CAs (here a copy in CERT_CRL_PATHS, signed by the demo root) names MOICA."""
    import datetime as dt

    from cryptography.hazmat.primitives import hashes

    d = card_pki()["dir"]
    root = x509.load_pem_x509_certificate((d / "roots.pem").read_bytes())
    root_key = serialization.load_pem_private_key((d / "private" / "grca.key").read_bytes(), None)
    moica = x509.load_pem_x509_certificate((d / "cas" / "moica.pem").read_bytes())
    now = dt.datetime.now(dt.UTC)
    arl = (
        x509.CertificateRevocationListBuilder().issuer_name(root.subject).last_update(now - dt.timedelta(hours=1))
        .next_update(now + dt.timedelta(days=1))
        .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(moica.serial_number)
                                 .revocation_date(now - dt.timedelta(hours=1)).build())
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "arl.crl").write_bytes(arl.public_bytes(serialization.Encoding.DER))
    copies = Settings(**{**settings.__dict__, "crl_paths": (str(tmp_path / "arl.crl"),)})
    refusal = _refused("revoked", verify_signature, sign_pkcs7("citizen-wang", NONCE), NONCE, settings=copies)
    assert "authority" in str(refusal)
    # The other CAs are not on it.
    assert verify_signature(sign_pkcs7("business-bank", NONCE), NONCE, settings=copies).kind == "business"


def test_a_ca_list_that_cannot_be_read_refuses_the_card_even_with_ocsp_up(settings, services):
    """Each issuing CA names GRCA's list of revoked CAs; with it out of reach (and none kept), fail closed."""
    services.stop_crl()
    refusal = _refused("revocation_unknown", verify_signature, sign_pkcs7("citizen-wang", NONCE), NONCE,
                       settings=settings)  # fmt: skip
    assert card_pki()["arl"]["url"] in str(refusal)
    # Read once, the list is kept until its nextUpdate: the CRL server may go away.
    responders()
    assert verify_signature(sign_pkcs7("citizen-wang", NONCE), NONCE, settings=settings).checked_by.startswith("ocsp")
    services.stop_crl()
    assert verify_signature(sign_pkcs7("citizen-lin", NONCE), NONCE, settings=settings).checked_by == "ocsp"

"""The demo card PKI (app/simulators/cardpki.py) and its revocation services
(app/simulators/ocsp.py), checked with the real openssl: chains, OCSP, CRLs."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from app.lib.identifiers import is_business_number, is_national_id
from app.simulators.cardpki import BUSINESS_NO, ID_LAST4, ORG_OID, make_cardpki
from tests.cards import card, card_pki, free_port_base, responders


def _openssl(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def _sda(cert: x509.Certificate) -> dict[str, str]:
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("2.5.29.9"))
    return {a["type"].dotted: a["values"][0].native for a in asn1_x509.Attributes.load(ext.value.value)}


def test_openssl_verify_accepts_the_good_chains_and_refuses_the_bad_cards():
    pki = card_pki()
    d = pki["dir"]
    good = [str(card(c["name"])["sign_cert"]) for c in pki["cards"] if c["state"] == "good"]
    good += [str(d / "tls" / "server.crt")]
    ok = _openssl("verify", "-CAfile", "roots.pem", "-untrusted", "cas/bundle.pem", *good, cwd=d)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": OK") == len(good)

    def refused(name: str, *extra: str) -> str:
        result = _openssl("verify", "-CAfile", "roots.pem", "-untrusted", "cas/bundle.pem", *extra,
                          str(card(name)["sign_cert"]), cwd=d)  # fmt: skip
        assert result.returncode != 0
        return result.stdout + result.stderr

    assert "unable to get local issuer certificate" in refused("citizen-wrong-issuer")
    assert "certificate has expired" in refused("citizen-expired")
    assert "certificate revoked" in refused("citizen-revoked", "-crl_check", "-CRLfile", "crl/moica.crl.pem")
    # The other cards are not on the CRL.
    assert "OK" in refused_not("citizen-wang", d)


def refused_not(name: str, d) -> str:
    result = _openssl("verify", "-crl_check", "-CRLfile", "crl/moica.crl.pem", "-CAfile", "roots.pem",
                      "-untrusted", "cas/bundle.pem", str(card(name)["sign_cert"]), cwd=d)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_tls_certificate_serves_localhost_and_127_0_0_1():
    d = card_pki()["dir"]
    for check in (("-verify_hostname", "localhost"), ("-verify_ip", "127.0.0.1")):
        result = _openssl("verify", "-purpose", "sslserver", *check, "-CAfile", "roots.pem", "-untrusted",
                          "cas/bundle.pem", "tls/server.crt", cwd=d)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
    wrong = _openssl("verify", "-verify_hostname", "example.org", "-CAfile", "roots.pem", "-untrusted",
                     "cas/bundle.pem", "tls/server.crt", cwd=d)  # fmt: skip
    assert wrong.returncode != 0
    chain = x509.load_pem_x509_certificates((d / "tls" / "chain.pem").read_bytes())
    assert [c.subject for c in chain] == [
        chain[0].subject,
        x509.load_pem_x509_certificate((d / "cas" / "gca.pem").read_bytes()).subject,
    ]


def test_cards_carry_their_identifying_data_and_separate_usages():
    pki = card_pki()
    assert {c["kind"] for c in pki["cards"]} == {"citizen", "business", "government", "organisation"}
    assert {c["state"] for c in pki["cards"]} == {"good", "revoked", "expired", "wrong-issuer", "wrong-usage"}
    assert json.loads((pki["dir"] / "cards.json").read_text(encoding="utf-8"))["pin"] == "1234"
    wang = card("citizen-wang")
    assert is_national_id(wang["id_number"])
    cert = x509.load_pem_x509_certificate(wang["sign_cert"].read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "王小明"
    assert _sda(cert) == {ID_LAST4: "6789"}
    assert wang["id_number"].encode() not in cert.public_bytes(Encoding.DER)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_encipherment
    enc = x509.load_pem_x509_certificate(wang["enc_cert"].read_bytes())
    enc_usage = enc.extensions.get_extension_for_class(x509.KeyUsage).value
    assert enc_usage.key_encipherment and not enc_usage.digital_signature and not enc_usage.content_commitment
    assert enc.public_key().public_numbers() != cert.public_key().public_numbers()
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert aia[0].access_location.value == next(o["url"] for o in pki["ocsp"] if o["ca"] == "moica")
    dp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp[0].full_name[0].value == pki["crls"]["moica"]["url"]
    # The CAs name the root's list of revoked CAs.
    ca = x509.load_pem_x509_certificate((pki["dir"] / "cas" / "moica.pem").read_bytes())
    ca_dp = ca.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert ca_dp[0].full_name[0].value == pki["arl"]["url"]

    bank = card("business-bank")
    assert is_business_number(bank["business_no"])
    assert _sda(x509.load_pem_x509_certificate(bank["sign_cert"].read_bytes())) == {BUSINESS_NO: bank["business_no"]}
    clerk = card("gov-clerk-card")
    assert (clerk["username"], clerk["agency_code"]) == ("clerk.card", "TAX")
    assert _sda(x509.load_pem_x509_certificate(clerk["sign_cert"].read_bytes())) == {ORG_OID: clerk["org_oid"]}
    # The wrong-usage card signs with its encryption certificate: keyEncipherment only.
    odd = card("citizen-wrong-usage")
    assert odd["sign"] == odd["enc"]
    odd_usage = x509.load_pem_x509_certificate(odd["sign_cert"].read_bytes()).extensions.get_extension_for_class(
        x509.KeyUsage
    )
    assert odd_usage.value.key_encipherment and not odd_usage.value.digital_signature
    # The keys open with the PIN only.
    key, leaf, chain = pkcs12.load_key_and_certificates(wang["sign"].read_bytes(), b"1234")
    assert leaf == cert and key is not None and len(chain) == 2
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(wang["sign"].read_bytes(), b"0000")


def test_real_openssl_ocsp_answers_good_for_a_good_card_and_revoked_for_the_revoked_one():
    pki = card_pki()
    d = pki["dir"]
    responders()
    moica = next(o for o in pki["ocsp"] if o["ca"] == "moica")
    result = _openssl(
        "ocsp", "-issuer", "cas/moica.pem", "-cert", str(card("citizen-wang")["sign_cert"]),
        "-cert", str(card("citizen-revoked")["sign_cert"]), "-url", moica["url"], "-CAfile", "roots.pem",
        "-verify_other", "cas/bundle.pem", cwd=d,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Response verify OK" in out
    assert "citizen-wang/sign.pem: good" in out
    assert "citizen-revoked/sign.pem: revoked" in out
    assert "Next Update" in out  # so an answer can be cached until then
    gca = next(o for o in pki["ocsp"] if o["ca"] == "gca")
    clerk = _openssl("ocsp", "-issuer", "cas/gca.pem", "-cert", str(card("gov-clerk-card")["sign_cert"]),
                     "-cert", "tls/server.crt", "-url", gca["url"], "-CAfile", "roots.pem", cwd=d)  # fmt: skip
    assert clerk.stdout.count(": good") == 2, clerk.stdout + clerk.stderr


def test_crl_server_publishes_the_crls_and_nothing_else():
    pki = card_pki()
    responders()
    with urllib.request.urlopen(pki["crls"]["moica"]["url"], timeout=10) as answer:
        crl = x509.load_der_x509_crl(answer.read())
    revoked = card("citizen-revoked")
    assert crl.get_revoked_certificate_by_serial_number(int(revoked["serials"]["sign"], 16)) is not None
    for path in ("/crl/../private/grca.key", "/private/grca.key", "/cards.json", "/crl/nothing.crl"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(pki["crl_url"].removesuffix("/crl/") + path, timeout=10)
        assert err.value.code == 404
        err.value.close()


def test_a_second_run_reads_the_pki_back_refreshes_the_crls_and_changes_the_pin(tmp_path):
    base = free_port_base()
    first = make_cardpki(tmp_path, pin="1234", port_base=base, key_size=1024 + 1024)
    crl_before = x509.load_der_x509_crl((tmp_path / "crl" / "moica.crl").read_bytes())
    root_before = (tmp_path / "roots.pem").read_bytes()
    second = make_cardpki(tmp_path, pin="5678", port_base=base)
    assert (tmp_path / "roots.pem").read_bytes() == root_before
    assert [c["serials"] for c in second["cards"]] == [c["serials"] for c in first["cards"]]
    crl_after = x509.load_der_x509_crl((tmp_path / "crl" / "moica.crl").read_bytes())
    assert crl_after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number >= (
        crl_before.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    )
    p12 = (tmp_path / second["cards"][0]["sign"]).read_bytes()
    assert pkcs12.load_key_and_certificates(p12, b"5678")[0] is not None
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(p12, b"1234")
    # Other ports: the certificates name them, so the PKI is made anew.
    third = make_cardpki(tmp_path, pin="5678", port_base=free_port_base())
    assert (tmp_path / "roots.pem").read_bytes() != root_before
    assert third["cards"][0]["serials"] != first["cards"][0]["serials"]


def test_stopped_ocsp_responders_refuse_connections_and_start_again():
    pki = card_pki()
    running = responders()
    url = next(o["url"] for o in pki["ocsp"] if o["ca"] == "moica")
    running.stop_ocsp()
    try:
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, data=b"x", timeout=5)
    finally:
        responders()
    result = _openssl("ocsp", "-issuer", "cas/moica.pem", "-cert", str(card("citizen-lin")["sign_cert"]), "-url",
                      url, "-CAfile", "roots.pem", cwd=pki["dir"])  # fmt: skip
    assert ": good" in result.stdout, result.stdout + result.stderr


def test_a_card_revoked_meanwhile_is_answered_revoked_at_the_next_request(tmp_path):
    """The running responders read the changed index file again; the CRL server serves the new CRL."""
    from app.simulators.cardpki import set_revoked
    from app.simulators.ocsp import Responders

    base = free_port_base()
    make_cardpki(tmp_path, port_base=base)
    url = f"http://127.0.0.1:{base + 1}/"

    def status() -> str:
        result = _openssl("ocsp", "-issuer", "cas/moica.pem", "-cert", "cards/citizen-lin/sign.pem", "-url", url,
                          "-CAfile", "roots.pem", cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def on_crl() -> bool:
        crl = x509.load_der_x509_crl((tmp_path / "crl" / "moica.crl").read_bytes())
        serial = int(json.loads((tmp_path / "cards.json").read_text())["cards"][1]["serials"]["sign"], 16)
        return crl.get_revoked_certificate_by_serial_number(serial) is not None

    with Responders(tmp_path):
        assert ": good" in status() and not on_crl()
        manifest = set_revoked(tmp_path, "citizen-lin")
        assert next(c for c in manifest["cards"] if c["name"] == "citizen-lin")["state"] == "revoked"
        assert ": revoked" in status() and on_crl()
        set_revoked(tmp_path, "citizen-lin", revoked=False)
        assert ": good" in status() and not on_crl()
    with pytest.raises(ValueError):
        set_revoked(tmp_path, "citizen-expired")
    with pytest.raises(ValueError):
        set_revoked(tmp_path, "nobody")

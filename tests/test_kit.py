"""The sign-and-encrypt kit, as agency staff use it on their PCs: the social
affairs department signs a file and encrypts it for tax bureau staff; anyone with
openssl can read it; the tax bureau opens files made with openssl too; and
whatever goes wrong (a changed byte, the wrong key, a revoked, expired or
untrusted signer, a wrong PIN, a full disk) the kit says so in one line and
leaves no file behind."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import serialization

from app.kit import files
from app.kit.__main__ import main as kit_main
from app.kit.demo_pki import StaffSpec, load_pki, make_pki
from app.kit.errors import NotEnvelope
from app.kit.inspect import certificate_sha256, envelope_recipients, load_certificate

ROOT = Path(__file__).resolve().parent.parent
PIN = "2468"
PLAINTEXT = "身分證字號,姓名,所得\nA123456789,王小明,123456\n".encode() * 500
MIB = 1 << 20


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    staff = [
        StaffSpec("social.sender", "社會處", "王小明"),
        StaffSpec("tax.reader", "地方稅務局", "林美華"),
        StaffSpec("tax.second", "地方稅務局"),
        "land.third:地政事務所",
    ]
    return make_pki(tmp_path_factory.mktemp("kit-pki"), staff, pin=PIN)


@pytest.fixture()
def plain(tmp_path) -> Path:
    path = tmp_path / "低收入戶.csv"
    path.write_bytes(PLAINTEXT)
    return path


@pytest.fixture()
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def kit(*args) -> subprocess.CompletedProcess:
    """The kit as an agency PC runs it."""
    return subprocess.run(
        [sys.executable, "-m", "app.kit", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def run(capsys, *args) -> tuple[int, str, str]:
    """The same command line in this process (quicker for the many refusals)."""
    code = kit_main([str(a) for a in args])
    got = capsys.readouterr()
    return code, got.out, got.err


def openssl(*args, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(["openssl", *map(str, args)], input=stdin, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def encrypt_args(pki, sender: str, *recipients: str) -> list:
    s = pki.staff[sender]
    return ["encrypt", *sum((["--to", pki.staff[r].cert] for r in recipients), []), "--sign-key", s.p12, "--pin", PIN]


def decrypt_args(pki, reader: str, crl: bool = True) -> list:
    r = pki.staff[reader]
    crls = sum((["--crl", c] for c in pki.crls), []) if crl else []
    return ["decrypt", "--key", r.p12, "--pin", PIN, "--cert", r.cert, "--trust", pki.ca_bundle, *crls]


def openssl_sign_and_encrypt(pki, plain: Path, out: Path, signer, recipient, sign_stream=True, encrypt_stream=True):
    """What an agency without the kit does: openssl cms -sign | openssl cms -encrypt."""
    signed = openssl(
        "cms",
        "-sign",
        *(["-stream"] if sign_stream else []),
        "-binary",
        "-nodetach",
        "-in",
        plain,
        "-signer",
        signer.cert,
        "-inkey",
        signer.key,
        "-certfile",
        pki.intermediate_cert,
        "-outform",
        "DER",
    )
    openssl(
        "cms",
        "-encrypt",
        *(["-stream"] if encrypt_stream else []),
        "-aes-256-cbc",
        "-binary",
        "-outform",
        "DER",
        "-out",
        out,
        recipient.cert,
        stdin=signed,
    )
    return out


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- it works, with openssl on either side --------------------------------------------


def test_openssl_decrypts_and_verifies_what_the_kit_signed_and_encrypted(pki, plain, out_dir):
    sealed = out_dir / "payload.p7m"
    done = kit(*encrypt_args(pki, "social.sender", "tax.reader"), plain, sealed)
    assert done.returncode == 0, done.stderr
    assert "林美華" in done.stdout and "王小明" in done.stdout
    data = sealed.read_bytes()
    assert data[:2] in (b"\x30\x82", b"\x30\x83", b"\x30\x84")  # DER: definite lengths
    assert cms.ContentInfo.load(data).dump(force=True) == data  # and nothing but DER
    r = pki.staff["tax.reader"]
    signed = openssl("cms", "-decrypt", "-inform", "DER", "-in", sealed, "-recip", r.cert, "-inkey", r.key)
    content = openssl("cms", "-verify", "-inform", "DER", "-CAfile", pki.ca_bundle, "-purpose", "any", stdin=signed)
    assert content == PLAINTEXT
    sd = cms.ContentInfo.load(signed)["content"]
    signer = sd["signer_infos"][0]
    assert sd["digest_algorithms"][0]["algorithm"].native == "sha256"
    assert {a["type"].native for a in signer["signed_attrs"]} == {"content_type", "message_digest", "signing_time"}
    carried = {certificate_sha256(c.chosen.dump()) for c in sd["certificates"]}
    assert pki.staff["social.sender"].fingerprint in carried
    intermediate = load_certificate(pki.intermediate_cert.read_bytes())
    assert certificate_sha256(intermediate) in carried  # the chain travels with the signature


@pytest.mark.parametrize(
    "sign_stream, encrypt_stream",
    [(True, True), (False, False), (False, True), (True, False)],
    ids=["both-stream", "no-stream", "encrypt-stream", "sign-stream"],
)
def test_the_kit_opens_what_openssl_signed_and_encrypted(pki, plain, out_dir, sign_stream, encrypt_stream):
    sealed = openssl_sign_and_encrypt(
        pki,
        plain,
        out_dir / "from-openssl.p7m",
        pki.staff["social.sender"],
        pki.staff["tax.reader"],
        sign_stream,
        encrypt_stream,
    )
    if encrypt_stream:
        assert sealed.read_bytes()[:2] == b"\x30\x80"  # BER, indefinite length
    with open(sealed, "rb") as f:  # what the platform checks on upload, without decrypting
        assert [s for _, s in envelope_recipients(f)] == [pki.staff["tax.reader"].serial]
    done = kit(*decrypt_args(pki, "tax.reader"), sealed, out_dir / "got.csv")
    assert done.returncode == 0, done.stderr
    assert (out_dir / "got.csv").read_bytes() == PLAINTEXT
    assert (
        "王小明" in done.stdout
        and "簽章有效" in done.stdout
        and f"{pki.staff['social.sender'].serial:#x}" in done.stdout
    )


def test_three_recipients_each_open_the_file_and_see_who_signed_it(pki, plain, out_dir, capsys):
    sealed = out_dir / "payload.p7m"
    code, out, err = run(
        capsys, *encrypt_args(pki, "social.sender", "tax.reader", "tax.second", "land.third"), plain, sealed
    )
    assert code == 0, err
    with open(sealed, "rb") as f:
        got = {(bytes(i), s) for i, s in envelope_recipients(f)}
    want = {
        (load_certificate(pki.staff[n].cert.read_bytes()).issuer.public_bytes(), pki.staff[n].serial)
        for n in ("tax.reader", "tax.second", "land.third")
    }
    assert got == want
    for reader in ("tax.reader", "tax.second", "land.third"):
        target = out_dir / f"{reader}.csv"
        code, out, err = run(capsys, *decrypt_args(pki, reader), sealed, target)
        assert code == 0, err
        assert target.read_bytes() == PLAINTEXT
        assert "王小明" in out and "社會處" in out and "簽章時間" in out


def test_keys_as_password_protected_pem_and_certificates_as_der(pki, plain, out_dir, capsys):
    s, r = pki.staff["social.sender"], pki.staff["tax.reader"]
    key = serialization.load_pem_private_key(s.key.read_bytes(), None)
    locked = out_dir / "sender-key.pem"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    sealed = out_dir / "payload.p7m"
    code, _, err = run(
        capsys,
        "encrypt",
        "--to",
        r.cert_der,
        "--sign-key",
        locked,
        "--pin",
        "secret",
        "--sign-cert",
        s.cert_der,
        "--chain",
        pki.intermediate_cert,
        plain,
        sealed,
    )
    assert code == 0, err
    code, _, err = run(
        capsys,
        "decrypt",
        "--key",
        r.key,
        "--cert",
        r.cert_der,
        "--trust",
        pki.root_cert,
        "--crl",
        pki.root_crl_der,
        "--crl",
        pki.intermediate_crl_der,
        sealed,
        out_dir / "got.csv",
    )
    assert code == 0, err
    assert (out_dir / "got.csv").read_bytes() == PLAINTEXT


def test_the_platform_configuration_file_names_the_recipients(pki, plain, out_dir, capsys):
    config = out_dir / "transfer.json"
    config.write_text(json.dumps(_config(pki, "social.sender", ["tax.reader", "tax.second"]), ensure_ascii=False))
    sealed = out_dir / "payload.p7m"
    code, out, err = run(
        capsys, "encrypt", "--config", config, "--sign-key", pki.staff["social.sender"].p12, "--pin", PIN, plain, sealed
    )
    assert code == 0, err
    assert "TR1150101000012" in out
    with open(sealed, "rb") as f:
        assert {s for _, s in envelope_recipients(f)} == {pki.staff[n].serial for n in ("tax.reader", "tax.second")}


def _config(pki, sender: str, recipients: list[str]) -> dict:
    return {
        "format": "transfer-config/1",
        "case_id": 12,
        "upload_no": "TR1150101000012",
        "item": "低收入戶財稅資料比對",
        "sending_agency": "社會處",
        "receiving_agency": "地方稅務局",
        "sender_cert_sha256": pki.staff[sender].fingerprint,
        "recipients": [
            {
                "name": n,
                "agency": "地方稅務局",
                "cert_pem": pki.staff[n].cert.read_text(),
                "cert_sha256": pki.staff[n].fingerprint,
            }
            for n in recipients
        ],
        "upload_url": "http://127.0.0.1:8080/api/v1/transfers/12/payload",
    }


def _with_trust(pki, config: dict) -> dict:
    """The configuration file as the platform now serves it: its roots and CRLs in it."""
    crls = "".join(
        "-----BEGIN X509 CRL-----\n" + base64.encodebytes(Path(der).read_bytes()).decode() + "-----END X509 CRL-----\n"
        for der in (pki.root_crl_der, pki.intermediate_crl_der)
    )
    return {**config, "trust_pem": Path(pki.ca_bundle).read_text(), "crls_pem": crls, "crl_urls": [], "ocsp_urls": []}


def test_decrypt_with_the_configuration_file_and_the_key_needs_nothing_else(pki, plain, out_dir, capsys):
    config = out_dir.parent / "transfer.json"
    config.write_text(json.dumps(_with_trust(pki, _config(pki, "social.sender", ["tax.reader"])), ensure_ascii=False))
    sealed = out_dir.parent / "payload.p7m"
    code, _, err = run(
        capsys, "encrypt", "--config", config, "--sign-key", pki.staff["social.sender"].p12, "--pin", PIN, plain, sealed
    )
    assert code == 0, err
    r = pki.staff["tax.reader"]
    done = kit("decrypt", "--config", config, "--key", r.p12, "--pin", PIN, sealed, out_dir / "got.csv")
    assert done.returncode == 0, done.stderr
    assert (out_dir / "got.csv").read_bytes() == PLAINTEXT
    assert "TR1150101000012" in done.stdout and "revocation was not checked" not in done.stdout
    # openssl agrees the file is what the kit says it is
    assert openssl("cms", "-decrypt", "-inform", "DER", "-in", sealed, "-recip", r.cert, "-inkey", r.key).startswith(
        b"0"
    )


def test_a_file_signed_by_another_agencys_officer_is_refused_with_the_cases_configuration_file(
    pki, plain, out_dir, capsys
):
    """The land office's officer holds a valid certificate of the same CA and seals a file for the
    tax bureau's reader: with the case's configuration file (social affairs registered as the
    sender) the reader's kit refuses it and leaves nothing; the sender's own file passes."""
    config = out_dir.parent / "transfer.json"
    config.write_text(json.dumps(_with_trust(pki, _config(pki, "social.sender", ["tax.reader"])), ensure_ascii=False))
    forged = out_dir.parent / "forged.p7m"
    code, _, err = run(capsys, *encrypt_args(pki, "land.third", "tax.reader"), plain, forged)
    assert code == 0, err
    r = pki.staff["tax.reader"]
    code, out, err = run(capsys, "decrypt", "--config", config, "--key", r.p12, "--pin", PIN, forged, out_dir / "x.csv")
    assert code == 1, (out, err)
    assert err.startswith("簽章者不是本案登記的寄件人 / the signer is not the sender registered for this case")
    assert pki.staff["land.third"].fingerprint[:16] in err and pki.staff["social.sender"].fingerprint[:16] in err
    assert leftovers(out_dir) == []
    # the same file is well signed: only the case's configuration file knows it is not the sender's
    code, _, err = run(capsys, *decrypt_args(pki, "tax.reader"), forged, out_dir / "x.csv")
    assert code == 0, err
    (out_dir / "x.csv").unlink()
    genuine = _sealed_for_tax_reader(pki, plain, out_dir.parent, capsys)
    code, out, err = run(
        capsys, "decrypt", "--config", config, "--key", r.p12, "--pin", PIN, genuine, out_dir / "x.csv"
    )
    assert code == 0, err
    assert "the signer is the sender registered for this case" in out
    assert (out_dir / "x.csv").read_bytes() == PLAINTEXT


def test_the_sender_decrypts_the_result_signed_by_the_receiving_agency_with_the_same_configuration_file(
    pki, plain, out_dir, capsys
):
    """The result comes back signed by a receiving officer (any of that agency may upload it): the
    sender's kit checks its signer's path, not that it is the sender."""
    config = out_dir.parent / "transfer.json"
    config.write_text(json.dumps(_with_trust(pki, _config(pki, "social.sender", ["tax.reader"])), ensure_ascii=False))
    result = out_dir.parent / "result.p7m"
    code, _, err = run(capsys, *encrypt_args(pki, "tax.second", "social.sender"), plain, result)
    assert code == 0, err
    s = pki.staff["social.sender"]
    code, out, err = run(capsys, "decrypt", "--config", config, "--key", s.p12, "--pin", PIN, result, out_dir / "r.csv")
    assert code == 0, err
    assert "registered for this case" not in out
    assert (out_dir / "r.csv").read_bytes() == PLAINTEXT


def test_an_old_configuration_file_without_roots_still_needs_trust(pki, plain, out_dir, capsys):
    config = out_dir.parent / "transfer.json"
    config.write_text(json.dumps(_config(pki, "social.sender", ["tax.reader"]), ensure_ascii=False))
    sealed = _sealed_for_tax_reader(pki, plain, out_dir.parent, capsys)
    r = pki.staff["tax.reader"]
    code, _, err = run(capsys, "decrypt", "--config", config, "--key", r.p12, "--pin", PIN, sealed, out_dir / "got.csv")
    assert code == 2 and "--trust" in err
    code, _, err = run(capsys, "decrypt", "--key", r.p12, "--pin", PIN, sealed, out_dir / "got.csv")
    assert code == 2 and "--config" in err
    code, _, err = run(capsys, *decrypt_args(pki, "tax.reader"), "--config", config, sealed, out_dir / "got.csv")
    assert code == 0, err
    assert leftovers(out_dir) == ["got.csv"]


def test_a_configuration_file_with_a_damaged_trust_bundle_is_refused(pki, plain, out_dir, capsys):
    config = out_dir.parent / "transfer.json"
    broken = _with_trust(pki, _config(pki, "social.sender", ["tax.reader"]))
    broken["trust_pem"] = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
    config.write_text(json.dumps(broken))
    sealed = _sealed_for_tax_reader(pki, plain, out_dir.parent, capsys)
    r = pki.staff["tax.reader"]
    code, _, err = run(capsys, "decrypt", "--config", config, "--key", r.p12, "--pin", PIN, sealed, out_dir / "got.csv")
    assert code == 2 and "trust_pem" in err
    assert leftovers(out_dir) == []


# --- refusals: a clear line, a non-zero exit, and no file -------------------------------


def _sealed_for_tax_reader(pki, plain, directory: Path, capsys) -> Path:
    sealed = directory / "payload.p7m"
    code, _, err = run(capsys, *encrypt_args(pki, "social.sender", "tax.reader"), plain, sealed)
    assert code == 0, err
    return sealed


def _offsets(data: bytes) -> dict[str, int]:
    info = cms.ContentInfo.load(data)["content"]
    encrypted_key = info["recipient_infos"][0].chosen["encrypted_key"].native
    iv = info["encrypted_content_info"]["content_encryption_algorithm"]["parameters"].native
    return {
        "first byte": 0,
        "length of the whole": 2,
        "recipient serial": data.index(info["recipient_infos"][0].chosen["rid"].chosen["serial_number"].contents),
        "encrypted key": data.index(encrypted_key) + 100,
        "initialisation vector": data.index(iv) + 3,
        "middle of the ciphertext": len(data) // 2,
        "signature (near the end)": len(data) - 100,
        "last byte": len(data) - 1,
    }


def test_a_changed_byte_anywhere_is_refused_and_leaves_nothing(pki, plain, tmp_path, out_dir, capsys):
    sealed = _sealed_for_tax_reader(pki, plain, tmp_path, capsys)
    data = sealed.read_bytes()
    for where, offset in _offsets(data).items():
        for mask in (0x01, 0xFF):
            changed = tmp_path / "changed.p7m"
            changed.write_bytes(data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :])
            code, out, err = run(capsys, *decrypt_args(pki, "tax.reader"), changed, out_dir / "got.csv")
            assert code != 0, f"{where}: accepted"
            assert err.count("\n") == 1 and " / " in err, (where, err)
            assert leftovers(out_dir) == [], where
    # the untouched file still opens: the refusals were about the changes
    assert run(capsys, *decrypt_args(pki, "tax.reader"), sealed, out_dir / "got.csv")[0] == 0


def test_a_changed_byte_in_an_openssl_stream_file_is_refused_too(pki, plain, out_dir, capsys):
    sealed = openssl_sign_and_encrypt(
        pki, plain, out_dir.parent / "o.p7m", pki.staff["social.sender"], pki.staff["tax.reader"]
    )
    data = sealed.read_bytes()
    for offset in (1, 300, len(data) // 2, len(data) - 3):
        changed = out_dir.parent / "changed.p7m"
        changed.write_bytes(data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :])
        code, _, err = run(capsys, *decrypt_args(pki, "tax.reader"), changed, out_dir / "got.csv")
        assert code != 0 and leftovers(out_dir) == [], offset


def test_someone_else_cannot_open_the_file(pki, plain, tmp_path, out_dir, capsys):
    sealed = _sealed_for_tax_reader(pki, plain, tmp_path, capsys)
    code, _, err = run(capsys, *decrypt_args(pki, "land.third"), sealed, out_dir / "got.csv")
    assert code == 1 and "此檔案不是加密給這張憑證 / the file is not encrypted for this certificate" in err
    # their key with the right person's certificate does not help either
    r, other = pki.staff["tax.reader"], pki.staff["land.third"]
    code, _, err = run(
        capsys, "decrypt", "--key", other.key, "--cert", r.cert, "--trust", pki.ca_bundle, sealed, out_dir / "got.csv"
    )
    assert code == 2 and "金鑰與憑證不相符 / the key does not belong to the certificate" in err
    assert leftovers(out_dir) == []


@pytest.mark.parametrize(
    "which, message",
    [
        ("revoked", "簽章者憑證已撤銷 / the signer's certificate is revoked"),
        ("expired", "簽章者憑證已過期或尚未生效 / the signer's certificate has expired"),
        ("untrusted", "簽章者憑證不受信任 / the signer's certificate is not trusted"),
        ("unsuitable", "簽章者憑證用途不含簽章 / the signer's certificate is not for signing"),
    ],
)
def test_a_file_signed_by_an_unacceptable_signer_is_refused(pki, plain, out_dir, capsys, which, message):
    sealed = openssl_sign_and_encrypt(
        pki, plain, out_dir.parent / "o.p7m", getattr(pki, which), pki.staff["tax.reader"]
    )
    code, out, err = run(capsys, *decrypt_args(pki, "tax.reader"), sealed, out_dir / "got.csv")
    assert code == 1 and message in err, err
    assert "簽章有效" not in out and leftovers(out_dir) == []


def test_without_crls_decrypt_refuses_unless_told_to_skip_revocation_and_then_says_so(pki, plain, out_dir, capsys):
    sealed = openssl_sign_and_encrypt(pki, plain, out_dir.parent / "o.p7m", pki.revoked, pki.staff["tax.reader"])
    code, out, err = run(capsys, *decrypt_args(pki, "tax.reader", crl=False), sealed, out_dir / "got.csv")
    assert code == 2 and "無法確認撤銷狀態 / revocation cannot be checked" in err and "--no-revocation-check" in err
    assert leftovers(out_dir) == []
    args = [*decrypt_args(pki, "tax.reader", crl=False), "--no-revocation-check"]
    code, out, _ = run(capsys, *args, sealed, out_dir / "got.csv")
    assert code == 0 and "revocation was not checked, as asked" in out


@pytest.mark.parametrize("which", ["expired", "unsuitable"])
def test_the_kit_refuses_to_sign_with_an_expired_or_encryption_only_certificate(pki, plain, out_dir, capsys, which):
    code, _, err = run(
        capsys,
        "encrypt",
        "--to",
        pki.staff["tax.reader"].cert,
        "--sign-key",
        getattr(pki, which).p12,
        "--pin",
        PIN,
        plain,
        out_dir / "payload.p7m",
    )
    assert code == 2 and "憑證不適用 / certificate cannot be used" in err
    assert leftovers(out_dir) == []


def test_a_wrong_pin_is_named_as_such(pki, plain, tmp_path, out_dir, capsys):
    args = encrypt_args(pki, "social.sender", "tax.reader")
    args[args.index(PIN)] = "0000"
    code, _, err = run(capsys, *args, plain, out_dir / "payload.p7m")
    assert code == 2 and err.startswith("PIN 錯誤 / wrong PIN")
    sealed = _sealed_for_tax_reader(pki, plain, tmp_path, capsys)
    args = decrypt_args(pki, "tax.reader")
    args[args.index(PIN)] = "9999"
    code, _, err = run(capsys, *args, sealed, out_dir / "got.csv")
    assert code == 2 and err.startswith("PIN 錯誤 / wrong PIN")
    assert leftovers(out_dir) == []


def test_a_file_that_is_not_a_certificate_is_named(pki, plain, out_dir, capsys):
    fake = out_dir.parent / "cert.pem"
    fake.write_text("-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n")
    args = encrypt_args(pki, "social.sender", "tax.reader")
    args[args.index("--to") + 1] = fake
    code, _, err = run(capsys, *args, plain, out_dir / "payload.p7m")
    assert code == 2 and err.startswith("不是憑證檔 / not a certificate file") and "bm9wZQ" not in err
    assert leftovers(out_dir) == []


def test_a_plaintext_file_is_not_taken_for_an_encrypted_one(pki, plain, out_dir, capsys):
    code, _, err = run(capsys, *decrypt_args(pki, "tax.reader"), plain, out_dir / "got.csv")
    assert code == 1 and err.startswith("不是加密檔（CMS EnvelopedData） / not an encrypted file")
    assert "A123456789" not in err and leftovers(out_dir) == []
    with open(plain, "rb") as f, pytest.raises(NotEnvelope):
        envelope_recipients(f)
    signed_only = openssl(
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-in",
        plain,
        "-signer",
        pki.staff["social.sender"].cert,
        "-inkey",
        pki.staff["social.sender"].key,
        "-outform",
        "DER",
    )
    import io

    with pytest.raises(NotEnvelope, match="signed but not encrypted"):
        envelope_recipients(io.BytesIO(signed_only))


def test_a_configuration_file_for_another_sender_is_refused(pki, plain, out_dir, capsys):
    config = out_dir.parent / "transfer.json"
    config.write_text(json.dumps(_config(pki, "tax.second", ["tax.reader"]), ensure_ascii=False))
    code, _, err = run(
        capsys,
        "encrypt",
        "--config",
        config,
        "--sign-key",
        pki.staff["social.sender"].p12,
        "--pin",
        PIN,
        plain,
        out_dir / "payload.p7m",
    )
    assert code == 2 and "此設定檔屬於其他寄件人或案件 / this configuration file is for another sender/case" in err
    # a recipient certificate swapped for another one no longer matches its fingerprint
    swapped = _config(pki, "social.sender", ["tax.reader"])
    swapped["recipients"][0]["cert_pem"] = pki.staff["land.third"].cert.read_text()
    config.write_text(json.dumps(swapped, ensure_ascii=False))
    code, _, err = run(
        capsys,
        "encrypt",
        "--config",
        config,
        "--sign-key",
        pki.staff["social.sender"].p12,
        "--pin",
        PIN,
        plain,
        out_dir / "payload.p7m",
    )
    assert code == 2 and "cert_sha256" in err
    config.write_text("{not json")
    code, _, err = run(
        capsys,
        "encrypt",
        "--config",
        config,
        "--sign-key",
        pki.staff["social.sender"].p12,
        "--pin",
        PIN,
        plain,
        out_dir / "payload.p7m",
    )
    assert code == 2 and err.startswith("設定檔格式錯誤 / malformed configuration file")
    assert leftovers(out_dir) == []


def test_a_full_disk_leaves_no_file_behind(pki, plain, tmp_path, out_dir, capsys, monkeypatch):
    sealed = _sealed_for_tax_reader(pki, plain, tmp_path, capsys)
    room = [20_000]

    def filling_write(fd, data):
        if room[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = min(len(data), room[0])
        room[0] -= n
        return os.write(fd, data[:n])

    monkeypatch.setattr(files, "_write", filling_write)
    code, _, err = run(capsys, *encrypt_args(pki, "social.sender", "tax.reader"), plain, out_dir / "payload.p7m")
    assert code == 3 and err.startswith("磁碟空間不足，未留下輸出檔 / disk full")
    room[0] = 20_000
    code, _, err = run(capsys, *decrypt_args(pki, "tax.reader"), sealed, out_dir / "got.csv")
    assert code == 3 and "disk full" in err
    assert leftovers(out_dir) == []


def test_a_file_size_limit_hit_in_a_real_process_leaves_no_file(pki, plain, tmp_path, out_dir):
    sealed = out_dir.parent / "payload.p7m"
    assert kit(*encrypt_args(pki, "social.sender", "tax.reader"), plain, sealed).returncode == 0

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))  # the kernel refuses writes past 10 kB

    done = subprocess.run(
        [sys.executable, "-m", "app.kit", *map(str, decrypt_args(pki, "tax.reader")), sealed, out_dir / "got.csv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        preexec_fn=limit,
    )
    assert done.returncode == 3 and "disk full" in done.stderr
    assert leftovers(out_dir) == []


# --- big files stream; the kit stands alone ---------------------------------------------


# A process forked from this (large) pytest process starts with its peak RSS, so the
# kit runs under a small launcher that reports its child's peak.
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print("MAXRSS_KIB", usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _measured(args: list) -> tuple[int, float, str]:
    """Exit code, peak RSS in MiB and stderr of one kit process."""
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "app.kit", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    kib = int(done.stderr.rsplit("MAXRSS_KIB", 1)[1])
    return done.returncode, kib / 1024, done.stderr


def test_a_200_mb_file_streams_through_in_little_memory(pki, tmp_path):
    big = tmp_path / "big.bin"
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    with open(big, "wb") as f:
        for i in range(200):
            piece = block[i:] + block[:i]
            f.write(piece)
            digest.update(piece)
    sealed, back = tmp_path / "big.p7m", tmp_path / "back.bin"
    code, rss_encrypt, err = _measured([*encrypt_args(pki, "social.sender", "tax.reader"), big, sealed])
    assert code == 0, err
    big.unlink()
    code, rss_decrypt, err = _measured([*decrypt_args(pki, "tax.reader"), sealed, back])
    assert code == 0, err
    with open(back, "rb") as f:
        assert hashlib.file_digest(f, "sha256").digest() == digest.digest()
    assert rss_encrypt < 64 and rss_decrypt < 64, (rss_encrypt, rss_decrypt)


def test_the_kit_loads_nothing_of_the_platform(pki, plain, tmp_path):
    sealed = tmp_path / "payload.p7m"
    assert kit(*encrypt_args(pki, "social.sender", "tax.reader"), plain, sealed).returncode == 0
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['app.kit'] + sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_module('app.kit', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "import app.kit.demo_pki, app.kit.inspect, app.kit.config\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'flask_appbuilder', 'sqlalchemy',\n"
        "             'flask_sqlalchemy', 'flask_babel') or (m.startswith('app.') and not m.startswith('app.kit')))\n"
        "print('LOADED', bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *map(str, decrypt_args(pki, "tax.reader")), sealed, tmp_path / "got.csv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
    assert (tmp_path / "got.csv").read_bytes() == PLAINTEXT


def test_the_demo_pki_is_made_once_and_completed_later(tmp_path):
    first = make_pki(tmp_path, ["transfer.social:社會處"], pin="1234")
    again = make_pki(tmp_path, [StaffSpec("transfer.social", "社會處"), StaffSpec("transfer.tax", "地方稅務局")])
    assert again.staff["transfer.social"].fingerprint == first.staff["transfer.social"].fingerprint
    assert set(again.staff) == {"transfer.social", "transfer.tax"}
    assert load_pki(tmp_path) == again
    cli = subprocess.run(
        [sys.executable, "-m", "app.kit.demo_pki", tmp_path, "--staff", "transfer.spare:社會處"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert set(load_pki(tmp_path).staff) == {"transfer.social", "transfer.tax", "transfer.spare"}
    crl = openssl("crl", "-in", again.intermediate_crl, "-noout", "-text").decode()
    assert f"{again.revoked.serial:X}" in crl.replace(":", "").upper()


# --- recipients checked, envelopes as openssl writes them by default ---------------------


@pytest.mark.parametrize(
    "which, message",
    [
        ("revoked", "憑證已撤銷 / the certificate is revoked"),
        ("untrusted", "憑證不受信任 / the certificate is not trusted"),
    ],
)
def test_encrypt_refuses_a_revoked_or_untrusted_recipient_when_given_trust_and_crls(
    pki, plain, out_dir, capsys, which, message
):
    sender = pki.staff["social.sender"]
    crls = sum((["--crl", c] for c in pki.crls), [])
    base = ["encrypt", "--sign-key", sender.p12, "--pin", PIN, "--trust", pki.ca_bundle, *crls]
    code, _, err = run(capsys, *base, "--to", getattr(pki, which).cert, plain, out_dir / "payload.p7m")
    assert code == 2 and "收件人憑證不可用 / a recipient's certificate cannot be used" in err and message in err, err
    assert leftovers(out_dir) == []
    code, _, err = run(capsys, *base, "--to", pki.staff["tax.reader"].cert, plain, out_dir / "payload.p7m")
    assert code == 0, err


def test_crls_for_recipients_need_trusted_roots(pki, plain, out_dir, capsys):
    sender = pki.staff["social.sender"]
    code, _, err = run(
        capsys,
        "encrypt",
        "--sign-key",
        sender.p12,
        "--pin",
        PIN,
        "--crl",
        pki.crls[0],
        "--to",
        pki.staff["tax.reader"].cert,
        plain,
        out_dir / "payload.p7m",
    )
    assert code == 2 and "--crl needs --trust" in err


def _signed(pki, plain: Path) -> bytes:
    s = pki.staff["social.sender"]
    return openssl(
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-in",
        plain,
        "-signer",
        s.cert,
        "-inkey",
        s.key,
        "-certfile",
        pki.intermediate_cert,
        "-outform",
        "DER",
    )


@pytest.mark.parametrize("form", [["-outform", "PEM"], ["-outform", "SMIME"], []])
def test_pem_and_smime_envelopes_decrypt_like_der(pki, plain, out_dir, capsys, form):
    sealed = out_dir.parent / "payload.txt"
    openssl(
        "cms",
        "-encrypt",
        "-aes256",
        "-binary",
        *form,
        "-out",
        sealed,
        pki.staff["tax.reader"].cert,
        stdin=_signed(pki, plain),
    )
    assert sealed.read_bytes()[:1] != b"\x30"  # base64-wrapped, not DER
    code, out, err = run(capsys, *decrypt_args(pki, "tax.reader"), sealed, out_dir / "got.csv")
    assert code == 0, err
    assert (out_dir / "got.csv").read_bytes() == PLAINTEXT


@pytest.mark.parametrize("stream", [True, False])
def test_aes_gcm_auth_enveloped_data_decrypts_and_a_changed_tag_is_refused(pki, plain, out_dir, capsys, stream):
    sealed = out_dir.parent / "payload.p7m"
    openssl(
        "cms",
        "-encrypt",
        *(["-stream"] if stream else []),
        "-aes-256-gcm",
        "-binary",
        "-outform",
        "DER",
        "-out",
        sealed,
        pki.staff["tax.reader"].cert,
        stdin=_signed(pki, plain),
    )
    code, _, err = run(capsys, *decrypt_args(pki, "tax.reader"), sealed, out_dir / "got.csv")
    assert code == 0, err
    assert (out_dir / "got.csv").read_bytes() == PLAINTEXT
    (out_dir / "got.csv").unlink()
    data = bytearray(sealed.read_bytes())
    tag_at = data.rfind(b"\x04\x10", 0, len(data) - 16) + 2  # the 16-byte tag near the end
    data[tag_at] ^= 1
    sealed.write_bytes(bytes(data))
    code, out, err = run(capsys, *decrypt_args(pki, "tax.reader"), sealed, out_dir / "got.csv")
    assert code == 1 and "authentication tag mismatch" in err, err
    assert leftovers(out_dir) == []


def test_a_3des_file_names_its_cipher_and_the_option_to_use(pki, plain, out_dir, capsys):
    sealed = out_dir.parent / "payload.p7m"
    # openssl 3.0's `cms -encrypt` without a cipher option uses 3DES
    openssl(
        "cms",
        "-encrypt",
        "-binary",
        "-outform",
        "DER",
        "-out",
        sealed,
        pki.staff["tax.reader"].cert,
        stdin=_signed(pki, plain),
    )
    code, _, err = run(capsys, *decrypt_args(pki, "tax.reader"), sealed, out_dir / "got.csv")
    assert code == 1 and "3DES (des-ede3-cbc)" in err and "-aes256" in err, err
    assert leftovers(out_dir) == []

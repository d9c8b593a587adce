"""What can go wrong, each with a bilingual one-line message and an exit code.

Exit codes: 1 the file was refused (damaged, tampered, not for you, signature
or signer not acceptable); 2 a problem with what the user gave (key, PIN,
certificate, configuration); 3 the output could not be written. Messages never
quote file contents.
"""

from __future__ import annotations


class KitError(Exception):
    """Base of every error the kit reports to its user."""

    zh = "錯誤"
    en = "error"
    exit_code = 1

    def __init__(self, detail: str | None = None):
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        head = f"{self.zh} / {self.en}"
        return f"{head}: {self.detail}" if self.detail else head


# --- the user's inputs (exit 2) -------------------------------------------------


class InputError(KitError):
    zh, en, exit_code = "輸入錯誤", "invalid input", 2


class FileUnreadable(InputError):
    zh, en = "無法讀取檔案", "cannot read file"


class WrongPin(InputError):
    zh, en = "PIN 錯誤", "wrong PIN"


class PinRequired(InputError):
    zh, en = "需要 PIN", "a PIN is required (--pin)"


class NotACertificate(InputError):
    zh, en = "不是憑證檔", "not a certificate file"


class NotAKey(InputError):
    zh, en = "不是私密金鑰檔", "not a private key file"


class KeyMismatch(InputError):
    zh, en = "金鑰與憑證不相符", "the key does not belong to the certificate"


class CertificateUnusable(InputError):
    zh, en = "憑證不適用", "certificate cannot be used"


class ConfigError(InputError):
    zh, en = "設定檔格式錯誤", "malformed configuration file"


class WrongSender(InputError):
    zh, en = "此設定檔屬於其他寄件人或案件", "this configuration file is for another sender/case"


class RevocationNotChecked(InputError):
    zh, en = "無法確認撤銷狀態", "revocation cannot be checked"


class RecipientUnacceptable(InputError):
    zh, en = "收件人憑證不可用", "a recipient's certificate cannot be used"


class UnsupportedRecipient(InputError):
    zh, en = "不支援的收件人識別方式", "unsupported recipient identifier"


# --- the file was refused (exit 1) ---------------------------------------------


class NotEnvelope(KitError):
    zh, en = "不是加密檔（CMS EnvelopedData）", "not an encrypted file (CMS EnvelopedData)"


class Damaged(KitError):
    zh, en = "檔案損毀或遭竄改", "the file is damaged or was tampered with"


class UnsupportedAlgorithm(KitError):
    zh, en = "不支援的演算法", "unsupported algorithm"


class NotForRecipient(KitError):
    zh, en = "此檔案不是加密給這張憑證", "the file is not encrypted for this certificate"


class DecryptionFailed(KitError):
    zh, en = "解密失敗", "decryption failed"


class DigestMismatch(KitError):
    zh, en = "內容摘要不符（遭竄改）", "content digest mismatch (the content was altered)"


class SignatureInvalid(KitError):
    zh, en = "簽章驗證失敗", "signature verification failed"


class SignerUntrusted(KitError):
    zh, en = "簽章者憑證不受信任", "the signer's certificate is not trusted"


class SignerRevoked(KitError):
    zh, en = "簽章者憑證已撤銷", "the signer's certificate is revoked"


class SignerExpired(KitError):
    zh, en = "簽章者憑證已過期或尚未生效", "the signer's certificate has expired or is not yet valid"


class UnexpectedSigner(KitError):
    zh, en = "簽章者不是本案登記的寄件人", "the signer is not the sender registered for this case"


class SignerKeyUsage(KitError):
    zh, en = "簽章者憑證用途不含簽章", "the signer's certificate is not for signing"


class RevocationUnknown(KitError):
    zh, en = "無法確認憑證是否撤銷", "revocation status unknown"


# --- the output (exit 3) -------------------------------------------------------


class StorageError(KitError):
    zh, en, exit_code = "無法寫入輸出檔", "cannot write the output file", 3


class DiskFull(StorageError):
    zh, en = "磁碟空間不足，未留下輸出檔", "disk full; no output file was left"

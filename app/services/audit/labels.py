"""Words for the audit trail's codes: every action and object type an audit event
can carry, and every outcome, with its label (zh_TW in the catalogue, English second).

This is the one list of action names: a new ``audit.record(..., "x.y")`` needs its
line here (tests/test_words.py reads the code for every action and object type
emitted and fails on one without a label). The stored codes never change; only
what people read does.
"""

from flask_babel import lazy_gettext as _l

# action -> label
ACTIONS = {
    "login": _l("Sign-in"),
    "logout": _l("Sign-out"),
    "login_failed": _l("Failed sign-in"),
    "login_refused": _l("Sign-in refused (account locked)"),
    "account_locked": _l("Account locked"),
    "unlock": _l("Account unlocked"),
    "account_refused": _l("Account change refused"),
    "deactivate": _l("Account deactivated"),
    "account_review_open": _l("Account review opened"),
    "account_review_refused": _l("Account review step refused"),
    "account_review_complete": _l("Account review completed"),
    "account_review_export": _l("Account review downloaded"),
    "account_review_overdue": _l("Account review overdue"),
    "account_dormant_warned": _l("Dormant account warned"),
    "account_dormant_kept": _l("Dormant account kept"),
    "account_dormant_disabled": _l("Dormant account disabled"),
    "password_change": _l("Password changed"),
    "revoke_sessions": _l("Sessions ended"),
    "create": _l("Create"),
    "update": _l("Update"),
    "delete": _l("Delete"),
    "card_bind": _l("Certificate card bound"),
    "card_unbind": _l("Certificate card unbound"),
    "card_recheck": _l("Certificate card re-checked"),
    "query": _l("Query"),
    "query_reopen": _l("Query result reopened"),
    "source_test": _l("Data source connection test"),
    "source_refused": _l("Data source refused for a form"),
    "report_export": _l("Report exported"),
    "keys_rotated": _l("Encryption keys rotated"),
    "outbox.requeue": _l("Mails requeued"),
    "backup_made": _l("Backup made"),
    "backup_restored": _l("Backup restored"),
    "audit_checkpoint_refused": _l("Audit checkpoint refused"),
    "audit_forged_rows": _l("Forged audit rows found"),
    "audit_replayed_rows": _l("Replayed audit rows found"),
    "audit_archive": _l("Audit month archived"),
    "audit_archive_removed": _l("Archived audit month removed"),
    "query_snapshots_blanked": _l("Stored query results cleared"),
    "form_designed": _l("Query form designed"),
    "designer_test": _l("Form designer test query"),
    "case_register": _l("Notification case registered"),
    "case_complete": _l("Case completed"),
    "case_search": _l("Cases searched by a person's ID number or name"),
    "attachment_check": _l("Attachment checked"),
    "attachment_download": _l("Attachment downloaded"),
    "attachment_refused": _l("Attachment refused"),
    "signature_check": _l("Signature checked"),
    "dispatch_receive": _l("Dispatch received"),
    "dispatch_assign": _l("Dispatch assigned"),
    "dispatch_accept": _l("Dispatch accepted"),
    "dispatch_process": _l("Dispatch result recorded"),
    "dispatch_close": _l("Dispatch closed"),
    "dispatch_return": _l("Dispatch returned"),
    "survey_response": _l("Questionnaire answered"),
    "transfer.registered": _l("Transfer registered"),
    "transfer.config_downloaded": _l("Transfer configuration downloaded"),
    "transfer.uploaded": _l("Transfer file uploaded"),
    "transfer.processed": _l("Transfer result uploaded"),
    "transfer.payload_downloaded": _l("Transfer file downloaded"),
    "transfer.result_downloaded": _l("Transfer result downloaded"),
    "transfer.noted": _l("Transfer remarks recorded"),
    "transfer.upload_refused": _l("Transfer upload refused"),
    "certificate.registered": _l("Staff certificate registered"),
    "certificate.withdrawn": _l("Staff certificate withdrawn"),
    "certificate.rechecked": _l("Staff certificates re-checked"),
    "certificate.refused": _l("Staff certificate refused"),
    "ftp.login": _l("FTP sign-in"),
    "ftp.login_failed": _l("Failed FTP sign-in"),
    "payment.start": _l("Payment started"),
    "payment.start_refused": _l("Payment refused"),
    "payment.checkout_failed": _l("Payment gateway unavailable"),
    "payment.paid": _l("Payment received"),
    "payment.failed": _l("Payment failed"),
    "payment.expired": _l("Payment expired"),
    "payment.viewed": _l("Payment viewed"),
    "payment.view_refused": _l("Payment view refused"),
    "payment.notify_refused": _l("Payment notice refused"),
    "payment.query_mismatch": _l("Payment status mismatch"),
    "payment.receipt": _l("Receipt issued"),
    "payment.receipt_refused": _l("Receipt refused"),
    "payment.reconcile": _l("Payments reconciled"),
    "payment.refund_requested": _l("Refund requested"),
    "payment.refund_failed": _l("Refund failed"),
    "payment.refunded": _l("Refunded"),
    "payment.collections": _l("Collections report"),
    "payment_provider_test": _l("Payment provider test"),
    "portal.application": _l("Online application filed"),
    "portal.application_draft": _l("Online application drafted"),
    "portal.application_draft_refused": _l("Online application draft refused"),
    "portal.application_review": _l("Online application reviewed"),
    "portal.cases_viewed": _l("Own cases listed"),
    "portal.case_viewed": _l("Own case viewed"),
    "portal.case_refused": _l("Case view refused"),
    "portal.withdraw": _l("Application withdrawn"),
    "portal.mail_stages": _l("Mail preferences changed"),
    "portal.accesses_viewed": _l("Own data accesses listed"),
    "portal.access_viewed": _l("Own data access viewed"),
    "portal.access_refused": _l("Data access view refused"),
    "portal.access_flag": _l("Data access questioned"),
    "portal.flags_viewed": _l("Questioned accesses listed"),
    "portal.flag_answer": _l("Questioned access answered"),
}

# object type (a model's name, as recorded) -> label
OBJECT_TYPES = {
    "User": _l("Account"),
    "Role": _l("Role"),
    "Group": _l("Group"),
    "Permission": _l("Permission"),
    "ViewMenu": _l("Screen or menu"),
    "PermissionView": _l("Permission on a screen"),
    "RegisterUser": _l("Account registration"),
    "ApiKey": _l("API key"),
    "Agency": _l("Agency"),
    "DataSource": _l("Data source"),
    "QueryForm": _l("Query form"),
    "FormInput": _l("Form input"),
    "FormSection": _l("Form section"),
    "SectionFilter": _l("Section filter"),
    "SectionColumn": _l("Output column"),
    "BusinessItem": _l("Business item"),
    "QueryLog": _l("Query record"),
    "QuerySummary": _l("Query statistics"),
    "NotificationCategory": _l("Notification category"),
    "CategoryField": _l("Category field"),
    "CategoryAttachment": _l("Category attachment"),
    "MailTemplate": _l("Mail template"),
    "NotificationCase": _l("Notification case"),
    "Dispatch": _l("Dispatch"),
    "DispatchHold": _l("Dispatch hold"),
    "CaseSignature": _l("Case signature"),
    "ApplicationDraft": _l("Online application draft"),
    "ApplicationDraftFile": _l("Online application file"),
    "AccessFlag": _l("Questioned access"),
    "TransferItem": _l("Transfer item"),
    "TransferCase": _l("Transfer"),
    "TransferEvent": _l("Transfer step"),
    "TransferRecipient": _l("Transfer recipient"),
    "StaffCertificate": _l("Staff certificate"),
    "Questionnaire": _l("Questionnaire"),
    "Question": _l("Question"),
    "Choice": _l("Answer choice"),
    "Invitation": _l("Questionnaire invitation"),
    "Response": _l("Questionnaire response"),
    "SurveyResponse": _l("Questionnaire response"),
    "Answer": _l("Questionnaire answer"),
    "SurveySummary": _l("Questionnaire statistics"),
    "Report": _l("Report"),
    "ReportBuild": _l("Report build"),
    "ReportSummary": _l("Report statistics"),
    "FeeItem": _l("Fee item"),
    "Payment": _l("Payment"),
    "PaymentProvider": _l("Payment provider"),
    "PaymentNotification": _l("Payment notice"),
    "Reconciliation": _l("Reconciliation"),
    "ReconciliationMismatch": _l("Reconciliation mismatch"),
    "OutboxMessage": _l("Mail"),
    "Backup": _l("Backup"),
    "AccountReview": _l("Account review"),
    "AuditArchive": _l("Audit archive"),
    "AuditChain": _l("Audit chain"),
    "FieldEncryption": _l("Field encryption"),
}

# outcome of an event or a query -> label
OUTCOMES = {
    "ok": _l("Succeeded"),
    "refused": _l("Refused"),
    "error": _l("Error"),
    "partial": _l("Partly answered"),
    "source_error": _l("Sources did not answer"),
    "candidates": _l("Several matches listed"),
}


def _label(labels: dict, code) -> str:
    if code is None or code == "":
        return ""
    label = labels.get(code)
    return str(label) if label is not None else str(code)


def action_label(code) -> str:
    """The action in words (the code itself when unknown: never hidden)."""
    return _label(ACTIONS, code)


def object_type_label(code) -> str:
    return _label(OBJECT_TYPES, code)


def outcome_label(code) -> str:
    return _label(OUTCOMES, code)

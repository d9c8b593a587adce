"""Roles, their permission sets, and separation of duties.

A role's permissions are given as (view-or-menu pattern, permission pattern)
regular expressions over FAB's permission names, as FAB's own FAB_ROLES
setting does; ``sync_roles`` creates or updates the roles from this table.
An administrator can still edit any role on FAB's screens afterwards; running
the command again restores the table's set (it only adds, never removes,
unless ``reset=True``).
"""

from __future__ import annotations

import re

from flask_appbuilder.security.sqla.models import (
    Permission,
    PermissionView,
    ViewMenu,
    assoc_permissionview_role,
    assoc_user_role,
)
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.models.org import Agency, PlatformUser
from app.services import actors
from app.services.errors import InvalidInput

ROLE_LABELS = {
    "Admin": _l("System administrator"),
    "FormDesigner": _l("Form designer"),
    "Clerk": _l("Query clerk"),
    "Notifier": _l("Notification operator"),
    "Supervisor": _l("Case supervisor"),
    "Handler": _l("Case handler"),
    "Transferor": _l("Transfer officer"),
    "Manager": _l("Business manager"),
    "Auditor": _l("Auditor"),
    "Citizen": _l("Citizen"),
    "Business": _l("Business or organisation"),
}


def role_label(role) -> str:
    """A role (or its name) in words; the stored name stays what programs rely on.
    A role an administrator added reads as its own name."""
    name = getattr(role, "name", role)
    label = ROLE_LABELS.get(name)
    return str(label) if label is not None else str(name or "")


def roles_label(roles) -> str:
    return "、".join(role_label(r) for r in roles or [])


# Every signed-in role may see its own profile and change its password.
_SELF_SERVICE = [
    (r"^PlatformUserView$", r"^(can_userinfo|userinfoedit|resetmypassword)$"),
    (r"^ResetMyPasswordView$", r"^can_this_form_(get|post)$"),
    (r"^UserInfoEditView$", r"^can_this_form_(get|post)$"),
    (r"^MenuApi$", r"^can_get$"),
    (r"^HomeView$", r"^can_.*$"),
    # bind one's own certificate card after a password sign-in
    (r"^MyCardView$", r"^can_(index|challenge|bind|unbind)$"),
    (r"^CertSignInApi$", r"^can_(bind_challenge|bind)$"),
]
_READ_AGENCIES = [(r"^(AgencyView|Agencies)$", r"^(can_list|can_show|menu_access)$")]
_QUERY = [
    (r"^QueryView$", r"^can_(index|form|new_case|history|result|print_page|pdf)$"),
    (r"^QueryApi$", r"^can_(forms|run|history|stored)$"),
    (r"^(Query|Certificate-free query|Query history)$", r"^menu_access$"),
]
_NOTIFY_READ = [
    (r"^(CategoryApi|CaseApi|DispatchApi|WorklistApi|AttachmentApi)$", r"^can_(list|get|check)$"),
    (r"^NotifyView$", r"^can_(index|case|dispatch|attachment|check|signature)$"),
    (r"^(Notification|Notification work)$", r"^menu_access$"),
]
# Case search (app.services.notify.search): what each may find is the command's to decide.
_CASE_SEARCH = [
    (r"^CaseSearchView$", r"^can_index$"),
    (r"^CaseApi$", r"^can_search$"),
    (r"^(Notification|Case search)$", r"^menu_access$"),
]
_NOTIFY_REGISTER = [(r"^CaseApi$", r"^can_register$"), (r"^NotifyView$", r"^can_new$")]
_NOTIFY_ACT = [(r"^DispatchApi$", r"^can_act$"), (r"^NotifyView$", r"^can_act$")]
_TRANSFER = [
    (
        r"^TransferView$",
        r"^can_(index|new|case|config|upload|download|notes|certificates|withdraw|kit|kit_file|kit_checksum)$",
    ),
    (
        r"^(TransferApi|CertificateApi)$",
        r"^can_(list|items|register|get|config|put_payload|get_payload|put_result|"
        r"get_result|notes|withdraw)$",
    ),
    (r"^(Transfer|Transfers|My certificates|Transfer kit)$", r"^menu_access$"),
]
_FORM_DESIGN = [
    (
        r"^(QueryFormView|FormInputView|FormSectionView|SectionFilterView|SectionColumnView|BusinessItemView)$",
        r"^(can_list|can_show|can_add|can_edit|can_delete)$",
    ),
    (
        r"^(QueryFormApi|FormInputApi|FormSectionApi|SectionFilterApi|SectionColumnApi|BusinessItemApi)$",
        r"^can_(get|post|put|delete|info)$",
    ),
    # the form designer: a whole form on one page (app.views.forms)
    (r"^FormDesignerView$", r"^can_design$"),
    (r"^FormDesignerApi$", r"^can_(get|post|put|try)$"),
    (r"^(Form designer)$", r"^menu_access$"),
    (r"^(DataSourceView)$", r"^(can_list|can_show|test_connection)$"),
    (r"^(DataSourceApi)$", r"^can_(get|info|test)$"),
    (r"^(Query setup|Query forms|Business items|Data sources)$", r"^menu_access$"),
]

_REPORTS = [
    (r"^ReportView$", r"^can_(index|export)$"),
    (r"^(Reports|Performance reports)$", r"^menu_access$"),
]
# The weekly query log: supervisors read their own agency's; managers and auditors every agency's.
_WEEKLY_QUERIES = [
    (r"^QueryLogReportView$", r"^can_(index|pdf)$"),
    (r"^(Reports|Weekly query log)$", r"^menu_access$"),
]
_SURVEY = [
    (r"^(QuestionnaireView|QuestionView|ChoiceView)$", r"^(can_list|can_show|can_add|can_edit|can_delete)$"),
    (r"^SurveyStatsView$", r"^can_(index|export)$"),
    (r"^(Satisfaction survey|Questionnaires|Survey statistics)$", r"^menu_access$"),
]

# Platform-wide capabilities (``app.services.actors``): commands decide on these, never on role names.
_PLATFORM = actors.PLATFORM
# Capabilities of one area, held next to the roles that get them.
TRANSFER_FILES = "transfer_files"  # send and receive confidential files for one's own agency
# The notification workflow's (the dispatch table in app.services.notify.workflow uses them).
NOTIFY_CASES = "notify_cases"  # register cases and follow one's own agency's cases
DISPATCH_SUPERVISE = "dispatch_supervise"  # receive, assign, review (close or return) one's agency's dispatches
DISPATCH_HANDLE = "dispatch_handle"  # receive, accept and record the result of dispatches assigned to oneself
# What the reports count, case by case: every agency's cases found by their number, category, state,
# dates, never by or with personal data (the Manager role's case search).
LIST_ALL_CASES = "list_all_cases"
# Not a power but a requirement: the roles holding it sign in with certificate card plus password
# (app.services.cards); no role holds it by default, an Admin gives it on the role screens.
REQUIRE_CARD = "card_and_password"
# The portal's (app.services.portal): citizens and businesses use it; Auditors answer its flags.
PORTAL = "portal"
REVIEW_FLAGS = "review_access_flags"
# Finance staff (the Manager role): payments, daily collections, settlement mismatches.
READ_PAYMENTS = "read_payments"
# Marking a query form restricted (its entries reach the people's "who read my data" only after a delay):
# the Admin's, not the form designer's.
RESTRICT_FORMS = "restrict_forms"
# The quarterly account review of one's own agency's staff accounts (app.services.account_review): supervisors.
REVIEW_ACCOUNTS = "review_accounts"
# Accountability (app.services.anomaly): supervisors and auditors resolve the anomaly rules' flags
# (supervisors their agency's); auditors read the auditor's desk.
RESOLVE_ANOMALIES = "resolve_anomaly_flags"
AUDIT_DESK = "audit_desk"
# Supervisors review and sign their agency's weekly query log (app.services.anomaly.reviews).
SIGN_WEEKLY_REVIEW = "sign_weekly_review"
CAPABILITIES = (
    *actors.CAPABILITIES, TRANSFER_FILES, NOTIFY_CASES, DISPATCH_SUPERVISE, DISPATCH_HANDLE, LIST_ALL_CASES,
    REQUIRE_CARD, PORTAL, REVIEW_FLAGS, READ_PAYMENTS, RESTRICT_FORMS, REVIEW_ACCOUNTS, RESOLVE_ANOMALIES, AUDIT_DESK,
    SIGN_WEEKLY_REVIEW,
)  # fmt: skip
# The anomaly flags' screen, for the roles that resolve them.
_ANOMALY_FLAGS = [(r"^(AnomalyFlagView|Anomaly flags|Audit)$", r"^(can_index|can_resolve|menu_access)$")]
# The weekly review's page: supervisors sign; auditors (and the supervisors) verify.
_WEEKLY_REVIEW = [
    (
        r"^(WeeklyReviewView|Weekly reviews)$",
        r"^(can_index|can_week|can_pdf|can_statement|can_sign|can_verify|menu_access)$",
    )
]
_ACCOUNT_REVIEW = [
    (r"^AccountReviewView$", r"^can_(index|open|decide|complete|export|signature)$"),
    (r"^(Account review|Security)$", r"^menu_access$"),
]
# Citizens and businesses signed in with their cards: their own profile page, nothing of the back office.
_CARD_HOLDER = [
    (r"^PlatformUserView$", r"^can_userinfo$"),
    (r"^MenuApi$", r"^can_get$"),
    (r"^HomeView$", r"^can_.*$"),
    # their own portal (/portal/) and its API (/api/v1/me/)
    (r"^PortalView$", r"^can_.*$"),
    (r"^MeApi$", r"^can_.*$"),
    # paying their cases' fees (app.views.payments)
    (r"^PaymentPortalView$", r"^can_.*$"),
    (r"^MyPaymentApi$", r"^can_.*$"),
    # applying online (/portal/apply/, /api/v1/me/categories and /api/v1/me/applications)
    (r"^PortalApplyView$", r"^can_.*$"),
    (r"^MeApplicationsApi$", r"^can_.*$"),
    (f"^{_PLATFORM}$", f"^{PORTAL}$"),
]

# Finance staff read the payments and the settlement mismatches (Admin configures providers and fees).
_PAYMENTS_READ = [
    (r"^(PaymentListView|ReconciliationView|MismatchView)$", r"^(can_list|can_show)$"),
    (r"^CollectionsView$", r"^can_(index|xlsx|reconcile)$"),
    (r"^(Payments|Settlement reconciliations|Daily collections)$", r"^menu_access$"),
    (f"^{_PLATFORM}$", f"^{READ_PAYMENTS}$"),
]

ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    # Admin gets everything through AUTH_ROLE_ADMIN; listed here for the menu.
    # Admin gets every capability but reading every agency's query history (auditors do that).
    "Admin": [
        (r"^(?!Platform$).*$", r".*"),
        (
            f"^{_PLATFORM}$",
            f"^({actors.ALL_AGENCIES}|{actors.ALL_FORMS}|{actors.WEEKLY_ALL_AGENCIES}|{actors.MANAGE_ACCOUNTS}"
            f"|{READ_PAYMENTS}|{RESTRICT_FORMS})$",
        ),
    ],
    "FormDesigner": _SELF_SERVICE + _READ_AGENCIES + _FORM_DESIGN,
    "Clerk": _SELF_SERVICE + _QUERY,
    "Notifier": _SELF_SERVICE
    + _READ_AGENCIES
    + _NOTIFY_READ
    + _CASE_SEARCH
    + _NOTIFY_REGISTER
    + [(f"^{_PLATFORM}$", f"^{NOTIFY_CASES}$")],
    "Supervisor": _SELF_SERVICE
    + _NOTIFY_READ
    + _CASE_SEARCH
    + _NOTIFY_ACT
    + _WEEKLY_QUERIES
    + _ANOMALY_FLAGS
    + _WEEKLY_REVIEW
    + _ACCOUNT_REVIEW
    + [(f"^{_PLATFORM}$", f"^({DISPATCH_SUPERVISE}|{REVIEW_ACCOUNTS}|{RESOLVE_ANOMALIES}|{SIGN_WEEKLY_REVIEW})$")],
    "Handler": _SELF_SERVICE + _NOTIFY_READ + _CASE_SEARCH + _NOTIFY_ACT + [(f"^{_PLATFORM}$", f"^{DISPATCH_HANDLE}$")],
    "Transferor": _SELF_SERVICE + _READ_AGENCIES + _TRANSFER + [(f"^{_PLATFORM}$", f"^{TRANSFER_FILES}$")],
    "Manager": _SELF_SERVICE
    + _READ_AGENCIES
    + _PAYMENTS_READ
    + _REPORTS
    + _WEEKLY_QUERIES
    + _SURVEY
    + _CASE_SEARCH
    + [(f"^{_PLATFORM}$", f"^({actors.WEEKLY_ALL_AGENCIES}|{LIST_ALL_CASES})$")],
    "Auditor": _SELF_SERVICE
    + _READ_AGENCIES
    + _WEEKLY_QUERIES
    + [
        (r"^(AuditEventView|Audit trail|Audit)$", r"^(can_list|can_show|menu_access)$"),
        (r"^(AuditEventApi)$", r"^(can_get|can_info)$"),
        (r"^(PlatformUserView|List Users|Security)$", r"^(can_list|can_show|menu_access)$"),
        # auditors read everyone's query history and reopen results; they never run queries
        (r"^QueryView$", r"^can_(history|result|print_page|pdf)$"),
        (r"^QueryApi$", r"^can_(history|stored)$"),
        (r"^(Query|Query history)$", r"^menu_access$"),
        (
            f"^{_PLATFORM}$",
            f"^({actors.READ_ALL_QUERIES}|{actors.WEEKLY_ALL_AGENCIES}|{REVIEW_FLAGS}|{RESOLVE_ANOMALIES}"
            f"|{AUDIT_DESK})$",
        ),
        # the anomaly rules' flags, and the auditor's desk
        *_ANOMALY_FLAGS,
        *_WEEKLY_REVIEW,
        (r"^(AuditDeskView|Auditor's desk)$", r"^(can_index|menu_access)$"),
        # the "I don't recognise this" flags on their agency's queries
        (r"^(AccessFlagView|Access flags)$", r"^(can_index|can_answer|menu_access)$"),
    ],
}

ROLE_PERMISSIONS["Citizen"] = list(_CARD_HOLDER)
ROLE_PERMISSIONS["Business"] = list(_CARD_HOLDER)

# Auditors are never also administrators or clerks (DOMAIN.md, county practice).
INCOMPATIBLE = [("Auditor", "Admin"), ("Auditor", "Clerk")]


def check_separation_of_duties(role_names) -> None:
    """Raise InvalidInput when one person would hold incompatible roles."""
    names = set(role_names)
    for a, b in INCOMPATIBLE:
        if a in names and b in names:
            raise InvalidInput(
                _l("Separation of duties: one user cannot be both %(a)s and %(b)s."),
                a=ROLE_LABELS[a],
                b=ROLE_LABELS[b],
            )


def holders_of(
    session, capability: str, agency_code: str | None = None, *, agency_id: int | None = None
) -> list[PlatformUser]:
    """The active users whose roles hold the Platform ``capability``, by username; only the
    agency's (given by code or id) when one is given."""
    grants = assoc_permissionview_role.c
    holding = (
        select(assoc_user_role.c.user_id)
        .join(assoc_permissionview_role, grants.role_id == assoc_user_role.c.role_id)
        .join(PermissionView, PermissionView.id == grants.permission_view_id)
        .join(Permission, Permission.id == PermissionView.permission_id)
        .join(ViewMenu, ViewMenu.id == PermissionView.view_menu_id)
        .where(ViewMenu.name == actors.PLATFORM, Permission.name == capability)
    )
    stmt = select(PlatformUser).where(PlatformUser.active.is_(True), PlatformUser.id.in_(holding))
    if agency_code is not None:
        stmt = stmt.join(Agency, Agency.id == PlatformUser.agency_id).where(Agency.code == agency_code)
    if agency_id is not None:
        stmt = stmt.where(PlatformUser.agency_id == agency_id)
    return list(session.scalars(stmt.order_by(PlatformUser.username)))


def sync_roles(sm, reset: bool = False) -> dict[str, int]:
    """Create or update every role of ROLE_PERMISSIONS; return permission counts."""
    all_pvms = sm.get_all_permissions_views() if hasattr(sm, "get_all_permissions_views") else None
    for capability in CAPABILITIES:
        sm.add_permission_view_menu(capability, actors.PLATFORM)
    pvms = sm.session.query(sm.permissionview_model).all()
    counts = {}
    for role_name, patterns in ROLE_PERMISSIONS.items():
        role = sm.find_role(role_name) or sm.add_role(role_name)
        compiled = [(re.compile(v), re.compile(p)) for v, p in patterns]
        wanted = [
            pvm
            for pvm in pvms
            if pvm.view_menu is not None
            and pvm.permission is not None
            and any(v.match(pvm.view_menu.name) and p.match(pvm.permission.name) for v, p in compiled)
        ]
        current = list(role.permissions) if not reset else []
        for pvm in wanted:
            if pvm not in current:
                current.append(pvm)
        role.permissions = current
        counts[role_name] = len(role.permissions)
    del all_pvms
    sm.session.commit()
    return counts

"""Platform tables, one module per domain. Importing this registers them all."""

from app.models.account_review import AccountReview, AccountReviewItem  # noqa: F401
from app.models.anomaly import (  # noqa: F401
    AnomalyCursor,
    AnomalyFlag,
    AnomalyRule,
    OfficeDay,
    ProtectedSubject,
    WeeklyReview,
)
from app.models.audit import (  # noqa: F401
    AuditArchive,  # noqa: F401
    AuditEvent,
    AuditHead,
)
from app.models.cards import CardBinding, CardChallenge  # noqa: F401
from app.models.notify import (  # noqa: F401
    Attachment,
    CaseEvent,
    CaseSequence,
    Dispatch,
    MailTemplate,
    NotificationCase,
    NotificationCategory,
)
from app.models.org import Agency, LoginThrottle, PlatformUser, SpentToken, UserSession  # noqa: F401
from app.models.outbox import OutboxMessage  # noqa: F401
from app.models.payments import (  # noqa: F401
    DispatchHold,
    FeeItem,
    Payment,
    PaymentNotification,
    PaymentProvider,
    Reconciliation,
    ReconciliationMismatch,
)
from app.models.portal import AccessFlag  # noqa: F401
from app.models.queries import (  # noqa: F401
    BusinessItem,
    ConfigGeneration,
    FormInput,
    FormSection,
    QueryForm,
    QueryLog,
    QuerySubject,
    SectionColumn,
    SectionFilter,
)
from app.models.reports import QuerySummary, ReportBuild, ReportSummary, SurveySummary  # noqa: F401
from app.models.sources import DataSource  # noqa: F401
from app.models.survey import Answer, Choice, Invitation, Question, Questionnaire, Response  # noqa: F401
from app.models.transfer import (  # noqa: F401
    StaffCertificate,
    TransferCase,
    TransferEvent,
    TransferItem,
    TransferRecipient,
)

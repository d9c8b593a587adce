"""Demo world seeding (demo and tests only): agencies and demo accounts."""

from __future__ import annotations

from sqlalchemy import select

from app.models.org import Agency
from app.services import org
from app.services.seed.anomaly import seed_anomaly

COUNTY = "示範縣"

AGENCIES = [
    # code, name, kind, e-mail
    ("COUNTY", f"{COUNTY}政府", "county", "it@county.demo.gov.tw"),
    ("HH-EAST", f"{COUNTY}東區戶政事務所", "household", "hh-east@county.demo.gov.tw"),
    ("HH-WEST", f"{COUNTY}西區戶政事務所", "household", "hh-west@county.demo.gov.tw"),
    ("LAND", f"{COUNTY}地政事務所", "land", "land@county.demo.gov.tw"),
    ("TAX", f"{COUNTY}地方稅務局", "tax", "tax@county.demo.gov.tw"),
    ("SOCIAL", f"{COUNTY}政府社會處", "social", "social@county.demo.gov.tw"),
    ("FIRE", f"{COUNTY}消防局", "fire", "fire@county.demo.gov.tw"),
    ("LABOUR", f"{COUNTY}政府勞工處", "labour", "labour@county.demo.gov.tw"),
    ("MOTOR", "交通部公路局示範監理站", "motor", "motor@mvdis.demo.gov.tw"),
    ("TWP-DP", f"{COUNTY}東平鄉公所", "township", "dongping@county.demo.gov.tw"),
    ("TWP-XL", f"{COUNTY}西林鄉公所", "township", "xilin@county.demo.gov.tw"),
]

# username, role, agency code, last name, first name, title
ACCOUNTS = [
    ("admin", "Admin", "COUNTY", "林", "資訊", "系統管理員"),
    ("designer", "FormDesigner", "COUNTY", "陳", "表單", "表單設計師"),
    ("clerk", "Clerk", "TAX", "張", "稅務", "查詢人員"),
    ("clerk.social", "Clerk", "SOCIAL", "李", "社福", "查詢人員"),
    ("notifier", "Notifier", "HH-EAST", "黃", "戶政", "通報作業員"),
    ("supervisor.land", "Supervisor", "LAND", "吳", "地政", "課長"),
    ("handler.land", "Handler", "LAND", "蔡", "地政", "承辦人"),
    ("supervisor.tax", "Supervisor", "TAX", "劉", "稅務", "股長"),
    ("handler.tax", "Handler", "TAX", "楊", "稅務", "承辦人"),
    ("transfer.social", "Transferor", "SOCIAL", "許", "傳遞", "傳遞承辦人"),
    ("transfer.tax", "Transferor", "TAX", "鄭", "傳遞", "傳遞承辦人"),
    ("manager", "Manager", "COUNTY", "謝", "業務", "業務主管"),
    # more receiving and notifying agencies, so that every demo category can run to completion
    ("notifier.fire", "Notifier", "FIRE", "江", "火災", "通報作業員"),
    ("supervisor.motor", "Supervisor", "MOTOR", "周", "監理", "課長"),
    ("handler.motor", "Handler", "MOTOR", "羅", "監理", "承辦人"),
    ("supervisor.social", "Supervisor", "SOCIAL", "高", "社政", "科長"),
    ("handler.social", "Handler", "SOCIAL", "宋", "社政", "社工員"),
    ("supervisor.labour", "Supervisor", "LABOUR", "何", "勞政", "科長"),
    ("handler.labour", "Handler", "LABOUR", "呂", "勞政", "承辦人"),
    ("auditor", "Auditor", "COUNTY", "郭", "稽核", "稽核人員"),
    # answers the portal's "I don't recognise this" flags on the tax bureau's queries
    ("auditor.tax", "Auditor", "TAX", "潘", "稽核", "稽核人員"),
]


def seed_agencies(session) -> dict[str, Agency]:
    by_code = {a.code: a for a in session.execute(select(Agency)).scalars()}
    for code, name, kind, email in AGENCIES:
        agency = by_code.get(code)
        if agency is None:
            agency = Agency(code=code, name=name, kind=kind, email=email, active=True)
            org.validate_agency(session, agency)
            session.add(agency)
            by_code[code] = agency
    session.flush()
    return by_code


def seed_accounts(sm, session, agencies: dict[str, Agency], password: str) -> list[str]:
    created = []
    for username, role_name, agency_code, last, first, title in ACCOUNTS:
        if sm.find_user(username=username) is not None:
            continue
        role = sm.find_role(role_name)
        if role is None:
            raise RuntimeError(f"role {role_name} missing: run 'flask roles sync' first")
        user = sm.add_user(
            username=username,
            first_name=first,
            last_name=last,
            email=f"{username}@county.demo.gov.tw",
            role=role,
            password=password,
        )
        if not user:
            raise RuntimeError(f"could not create demo account {username}")
        user.agency = agencies[agency_code]
        user.title = title
        org.validate_user(session, user)
        created.append(username)
    session.commit()
    return created


def seed_demo(sm, session, password: str) -> dict:
    agencies = seed_agencies(session)
    session.commit()
    created = seed_accounts(sm, session, agencies, password)
    categories = seed_categories(session, agencies)
    seed_web_applications(session, agencies)
    seed_counter_fields(session)
    questionnaire = seed_questionnaire(session)
    rules = seed_anomaly(session)
    return {"agencies": len(agencies), "accounts_created": created, "categories_created": categories,
            "questionnaire_created": questionnaire, "anomaly_rules_created": rules}  # fmt: skip


# Demo notification categories: (main, sub, kind, notifying agencies, default receivers, consent, due days)
CATEGORIES = [
    ("戶籍異動", "更名", "citizen", ("HH-EAST", "HH-WEST"), ("LAND", "TAX", "MOTOR"), True, 7),
    ("戶籍異動", "地址變更", "citizen", ("HH-EAST", "HH-WEST"), ("LAND", "TAX", "MOTOR"), True, 7),
    ("戶籍異動", "身分證字號變更", "citizen", ("HH-EAST", "HH-WEST"), ("LAND", "TAX", "MOTOR"), True, 10),
    ("災害通報", "火災建物毀損", "agency", ("FIRE",), ("SOCIAL", "TAX", "LABOUR"), False, 5),
    ("商業登記", "營業地址變更", "citizen", ("COUNTY",), ("TAX", "LABOUR"), False, 7),
]

# The categories open to online applications on the portal: (main, sub) -> the web-notifying agency,
# who applies, the fields (key, label, English label, type, old/new pair, required) and the
# attachments (key, label, English label, types, required).
WEB_APPLICATIONS = {
    ("戶籍異動", "地址變更"): (
        "HH-EAST",
        "citizen",
        [
            ("address", "地址", "Address", "text", True, True),
            ("moved_on", "遷入日期", "Date moved in", "date", False, True),
            ("remarks", "備註", "Remarks", "textarea", False, False),
        ],
        [
            (
                "proof",
                "居住證明（租約或房屋所有權狀）",
                "Proof of residence (lease or title deed)",
                "pdf,jpeg,png",
                False,
            )
        ],
    ),
    ("商業登記", "營業地址變更"): (
        "COUNTY",
        "business",
        [
            ("business_address", "營業地址", "Business address", "text", True, True),
            ("effective_on", "生效日期", "Effective date", "date", False, True),
        ],
        [("lease", "營業場所租賃契約", "Lease of the business premises", "pdf", True)],
    ),
}


def seed_categories(session, agencies: dict[str, Agency]) -> list[str]:
    from app.models.notify import NotificationCategory

    existing = {(c.main_item, c.sub_item) for c in session.scalars(select(NotificationCategory))}
    created = []
    for main, sub, kind, notifiers, receivers, consent, due in CATEGORIES:
        if (main, sub) in existing:
            continue
        session.add(NotificationCategory(
            main_item=main, sub_item=sub, kind=kind, consent_required=consent, due_days=due, active=True,
            notifying_agencies=[agencies[a] for a in notifiers], default_receivers=[agencies[a] for a in receivers],
        ))  # fmt: skip
        created.append(f"{main}/{sub}")
    session.commit()
    return created


# Structured fields of categories the counter registers (not open on the web): what changed,
# as the receiving agencies read it. (key, label, English label, type, old/new pair, required)
COUNTER_FIELDS = {
    ("戶籍異動", "更名"): [
        ("name", "姓名", "Name", "text", True, True),
        ("reason", "更名原因", "Reason", "text", False, False),
    ],
}


def seed_counter_fields(session) -> None:
    """The counter categories' structured fields (once: a category that has fields is left as it is)."""
    from app.models.notify import CategoryField, NotificationCategory

    for (main, sub), fields in COUNTER_FIELDS.items():
        cat = session.scalar(
            select(NotificationCategory).where(
                NotificationCategory.main_item == main, NotificationCategory.sub_item == sub
            )
        )
        if cat is None or cat.web_fields:
            continue
        for n, (name, label, label_en, kind, old_new, required) in enumerate(fields, start=1):
            cat.web_fields.append(CategoryField(position=n, name=name, label=label, label_en=label_en, type=kind,
                                                old_new=old_new, required=required, max_length=60))  # fmt: skip
    session.commit()


def seed_web_applications(session, agencies: dict[str, Agency]) -> None:
    """Open the demo's web categories (once: a category that has fields already is left as it is)."""
    from app.models.notify import CategoryAttachment, CategoryField, NotificationCategory

    for (main, sub), (agency, applicant, fields, files) in WEB_APPLICATIONS.items():
        cat = session.scalar(
            select(NotificationCategory).where(
                NotificationCategory.main_item == main, NotificationCategory.sub_item == sub
            )
        )
        if cat is None or cat.web_fields:
            continue
        cat.web_open, cat.web_agency, cat.web_applicant = True, agencies[agency], applicant
        for n, (name, label, label_en, kind, old_new, required) in enumerate(fields, start=1):
            cat.web_fields.append(CategoryField(position=n, name=name, label=label, label_en=label_en, type=kind,
                                                old_new=old_new, required=required, max_length=200))  # fmt: skip
        for n, (name, label, label_en, types, required) in enumerate(files, start=1):
            cat.web_attachments.append(
                CategoryAttachment(
                    position=n, name=name, label=label, label_en=label_en, types=types, required=required
                )
            )
    session.commit()


# The demo satisfaction questionnaire, sent to citizens of the citizen-application categories.
DEMO_QUESTIONNAIRE = "跨機關通報服務滿意度調查"
DEMO_QUESTIONS = [
    # type, text, required, choices
    ("rating", "整體而言，您對這次跨機關通報服務的滿意程度？（1 非常不滿意－5 非常滿意）", True, ()),
    ("rating", "臨櫃承辦人員的服務態度", True, ()),
    ("single", "這次辦理後，您是否還需要親自到其他機關辦理？", True,
     ("不需要，一次就辦好", "需要再去一個機關", "需要再去兩個以上機關")),
    ("multiple", "您從哪些管道得知辦理進度？（可複選）", False, ("電子郵件通知", "電話", "臨櫃詢問", "網站查詢")),
    ("text", "其他意見或建議", False, ()),
]  # fmt: skip


def seed_questionnaire(session) -> bool:
    """Create the demo questionnaire (once) and link it to the citizen categories."""
    from app.models.notify import NotificationCategory
    from app.models.survey import Choice, Question, Questionnaire

    if session.scalar(select(Questionnaire.id).where(Questionnaire.title == DEMO_QUESTIONNAIRE)):
        return False
    q = Questionnaire(title=DEMO_QUESTIONNAIRE, version=1, is_current=True, active=True,
                      introduction="感謝您使用跨機關通報服務。請花 1 分鐘告訴我們這次的服務經驗，您的意見將匿名統計，用於改善服務。")  # fmt: skip
    for n, (kind, text, required, choices) in enumerate(DEMO_QUESTIONS, start=1):
        question = Question(sort_order=n, type=kind, text=text, required=required)
        question.choices = [Choice(sort_order=i, text=c) for i, c in enumerate(choices, start=1)]
        q.questions.append(question)
    session.add(q)
    session.flush()
    q.series_id = q.id
    for category in session.scalars(select(NotificationCategory).where(NotificationCategory.kind == "citizen",
                                                                        NotificationCategory.questionnaire_id.is_(None))):  # fmt: skip
        category.questionnaire = q
    session.commit()
    return True

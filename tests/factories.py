"""Factories for query sources and forms, built the way a form designer would."""

from __future__ import annotations

import json

from flask import current_app
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select

from app.extensions import db
from app.models.org import Agency
from app.models.queries import BusinessItem, FormInput, FormSection, QueryForm, SectionColumn, SectionFilter
from app.models.sources import DataSource

PEOPLE = [
    {"id_no": "A123456789", "name": "王小明", "district": "東區", "income": 512000},
    {"id_no": "F131104093", "name": "林美華", "district": "西區", "income": 398000},
]


def people_db(path) -> str:
    """An agency's SQLite database with one view-like table of people."""
    engine = create_engine(f"sqlite:///{path}")
    meta = MetaData()
    people = Table("v_people", meta, Column("id_no", String(10), primary_key=True), Column("name", String(20)),
                   Column("district", String(20)), Column("income", Integer))  # fmt: skip
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(people), PEOPLE)
    engine.dispose()
    return str(path)


def agency(code: str) -> Agency:
    return db.session.scalar(select(Agency).where(Agency.code == code))


def business_item(code="TAX-CHECK", name="稅籍查核") -> BusinessItem:
    item = db.session.scalar(select(BusinessItem).where(BusinessItem.code == code))
    if item is None:
        item = BusinessItem(code=code, name=name, active=True)
        db.session.add(item)
    return item


def sqlite_source(code: str, path: str, **extra) -> DataSource:
    src = DataSource(code=code, name=f"來源 {code}", kind="sql", database=path, timeout=3, row_cap=100,
                     options=json.dumps({"dialect": "sqlite"}), enabled=True, **extra)  # fmt: skip
    db.session.add(src)
    return src


def people_form(code: str, source: DataSource, agencies=("TAX",), roles=("Clerk",), extra_sections=()) -> QueryForm:
    sm = current_app.appbuilder.sm
    form = QueryForm(code=code, title=f"測試表單 {code}", active=True,
                     granted_agencies=[agency(a) for a in agencies],
                     granted_roles=[sm.find_role(r) for r in roles],
                     business_items=[business_item()])  # fmt: skip
    form.inputs = [FormInput(name="id_no", label="身分證統一編號", type="national_id", required=True)]
    section = FormSection(title="個人資料", source=source, target="v_people", display="table", sort_order=1)
    section.filters = [SectionFilter(column="id_no", op="eq", input_name="id_no")]
    section.columns = [
        SectionColumn(column="id_no", label="統一編號", mask="last4", sort_order=1),
        SectionColumn(column="name", label="姓名", mask="name", sort_order=2),
        SectionColumn(column="district", label="區", sort_order=3),
        SectionColumn(column="income", label="所得", format="money", sort_order=4,
                      agencies=[agency("TAX")]),  # only the tax bureau needs incomes
    ]  # fmt: skip
    form.sections = [section, *extra_sections]
    db.session.add(form)
    db.session.commit()
    return form

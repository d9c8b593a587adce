"""Words for the form designer's codes: input types, filter operators, masks, formats,
section displays (zh_TW in the catalogue). The stored codes never change."""

from flask_babel import lazy_gettext as _l

INPUT_TYPE_LABELS = {
    "text": _l("Text"),
    "national_id": _l("National ID number"),
    "land_parcel": _l("Land parcel number"),
    "land_section": _l("Land section"),
    "building_no": _l("Building number"),
    "date": _l("Date (ROC)"),
    "choice": _l("Choice from a list"),
    "business_number": _l("Business number"),
    "number": _l("Number"),
}
OPERATOR_LABELS = {
    "eq": _l("equals"),
    "ne": _l("does not equal"),
    "lt": _l("less than"),
    "le": _l("at most"),
    "gt": _l("greater than"),
    "ge": _l("at least"),
    "like": _l("contains"),
    "prefix": _l("starts with"),
    "in": _l("one of (comma-separated)"),
}
MASK_LABELS = {
    "": _l("No mask"),
    "last4": _l("Show the last 4 characters only"),
    "first1": _l("Show the first character only"),
    "name": _l("Name masked (王○明)"),
    "all": _l("Fully masked"),
}
FORMAT_LABELS = {
    "": _l("As stored"),
    "roc_date": _l("ROC date (115/11/26)"),
    "number": _l("Number with thousands separators"),
    "money": _l("Amount in NT$"),
    "area": _l("Area (m²)"),
    "share": _l("Ownership share (1/2 as 2分之1)"),
    "parcel": _l("Land parcel number (0018-0001)"),
    "building": _l("Building number (00173-000)"),
}
DISPLAY_LABELS = {
    "table": _l("Table"),
    "fields": _l("Fields (one record)"),
    "map": _l("Cadastral map"),
    "plan": _l("Floor plan"),
}

"""Words, not codes: every audit action and object type the code can emit, every outcome,
and every choice of a select list reads in zh_TW (the catalogue walked, the code read)."""

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from app.services.audit import labels

APP = Path(__file__).parent.parent / "app"
PO = APP / "translations" / "zh_TW" / "LC_MESSAGES" / "messages.po"
CJK = re.compile(r"[\u4e00-\u9fff]")
# The audit's own recorders, with the position of their ``action`` argument.
RECORDERS = {"record": 1, "insert_with_event": 3, "event_values": 0}
# What no literal in a call names: the automatic CRUD events (recording.after_flush), whose
# actions and object types the next test checks against the models themselves.
CRUD_ACTIONS = {"create", "update", "delete"}
CRUD_RECORDER = "app/services/audit/recording.py:after_flush"


def _functions(tree):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _params(fn) -> list[str]:
    names = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]]
    return names[1:] if names[:1] == ["self"] else names


def _called(call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute):  # audit.record(...), self._record(...); never pki.record(...)
        if f.attr in RECORDERS and getattr(f.value, "id", None) != "audit":
            return None
        return f.attr
    return f.id if isinstance(f, ast.Name) else None


def _arg(call, name, pos):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return call.args[pos] if len(call.args) > pos else None


def _strings(node, fn, module):
    """The strings an expression can be (None: cannot tell from the code)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Constant) and node.value is None:
        return []
    if isinstance(node, ast.IfExp):
        a, b = _strings(node.body, fn, module), _strings(node.orelse, fn, module)
        return None if a is None or b is None else a + b
    if isinstance(node, ast.Name):
        found = []
        for scope in (fn, module):
            for n in ast.walk(scope):
                if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == node.id for t in n.targets):
                    values = _strings(n.value, fn, module)
                    if values is None:
                        return None
                    found += values
                # for action, ids in (("a", x), ("b", y)):
                if isinstance(n, ast.For) and isinstance(n.target, ast.Tuple) and isinstance(n.iter, ast.Tuple):
                    names = [getattr(t, "id", None) for t in n.target.elts]
                    if node.id in names:
                        i = names.index(node.id)
                        for item in n.iter.elts:
                            if not isinstance(item, ast.Tuple) or len(item.elts) <= i:
                                return None
                            values = _strings(item.elts[i], fn, module)
                            if values is None:
                                return None
                            found += values
            if found:
                return found
        return None
    return None


def emitted() -> tuple[dict, dict, list]:
    """Every action and object type a call in app/ passes to the audit, through any helper
    that hands its own ``action`` on (found by reading the code, to a fixed point), with
    where; and the calls whose action the code does not tell."""
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(APP.rglob("*.py"))}
    recorders = {name: (pos, "") for name, pos in RECORDERS.items()}
    changed = True
    while changed:
        changed = False
        for tree in trees.values():
            for fn in _functions(tree):
                if fn.name in recorders or "action" not in _params(fn):
                    continue
                for call in ast.walk(fn):
                    name = _called(call) if isinstance(call, ast.Call) else None
                    if name not in recorders:
                        continue
                    arg, prefix = _arg(call, "action", recorders[name][0]), None
                    if isinstance(arg, ast.Name) and arg.id == "action":
                        prefix = ""
                    elif isinstance(arg, ast.JoinedStr) and getattr(arg.values[-1], "value", None) is not None \
                            and getattr(arg.values[-1].value, "id", None) == "action":  # fmt: skip
                        prefix = "".join(v.value for v in arg.values[:-1])
                    if prefix is not None:
                        recorders[fn.name] = (_params(fn).index("action"), prefix + recorders[name][1])
                        changed = True
                        break
    actions, types, unknown = {}, {}, []
    for path, tree in trees.items():
        where = path.relative_to(APP.parent)
        for fn, call in _calls(tree):
            if True:
                name = _called(call)
                if name not in recorders:
                    continue
                pos, prefix = recorders[name]
                arg = _arg(call, "action", pos)
                if arg is None:
                    continue
                passes_on = isinstance(arg, ast.Name) and arg.id == "action" and "action" in _params(fn) \
                    or isinstance(arg, ast.JoinedStr)  # fmt: skip
                values = None if passes_on else _strings(arg, fn, tree)
                if values is None and not passes_on and f"{where}:{getattr(fn, 'name', '')}" != CRUD_RECORDER:
                    unknown.append(f"{where}:{call.lineno}")
                for value in values or ():
                    actions.setdefault(prefix + value, f"{where}:{call.lineno}")
                kind = next((kw.value for kw in call.keywords if kw.arg == "object_type"), None)
                if kind is not None and not (isinstance(kind, ast.Name) and kind.id == "object_type") \
                        and f"{where}:{getattr(fn, 'name', '')}" != CRUD_RECORDER:  # fmt: skip
                    kinds = _strings(kind, fn, tree)
                    if kinds is None:
                        unknown.append(f"{where}:{call.lineno} (object type)")
                    for value in kinds or ():
                        types.setdefault(value, f"{where}:{call.lineno}")
    return actions, types, unknown


def _calls(tree):
    """Every call with the function it is written in (innermost; the module outside any)."""

    def visit(node, fn):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Call):
                yield fn, child
            yield from visit(child, child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn)

    yield from visit(tree, tree)


def _catalog():
    with PO.open("rb") as fh:
        return read_po(fh)


def _zh(catalog, label) -> str:
    """A lazy label's zh_TW words, read from the catalogue itself."""
    msgid = label._args[0] if hasattr(label, "_args") else str(label)  # noqa: SLF001
    message = catalog.get(msgid)
    return message.string if message is not None else ""


def test_the_code_names_no_audit_action_or_object_type_the_catalogue_lacks():
    actions, types, unknown = emitted()
    assert unknown == [], "an audit call whose action the code does not tell: name it with a literal"
    assert len(actions) > 60 and "transfer.result_downloaded" in actions and "query_reopen" in actions
    assert {a: w for a, w in actions.items() if a not in labels.ACTIONS} == {}
    assert {t: w for t, w in types.items() if t not in labels.OBJECT_TYPES} == {}


def test_crud_events_and_dispatch_steps_are_in_the_catalogue_too():
    from flask_appbuilder import Model

    import app.models  # noqa: F401  every model mapped
    from app.services.audit.recording import NOT_AUDITED, OBJECT_TYPES
    from app.services.notify import workflow

    assert CRUD_ACTIONS <= labels.ACTIONS.keys()
    assert {f"dispatch_{a}" for a in workflow.ACTION_LABELS} <= labels.ACTIONS.keys()
    crud_types = {
        OBJECT_TYPES.get(m.class_.__name__, m.class_.__name__)
        for m in Model.registry.mappers
        if not issubclass(m.class_, NOT_AUDITED)
    }
    assert crud_types - labels.OBJECT_TYPES.keys() == set()


def test_every_audit_action_object_type_and_outcome_reads_in_chinese():
    catalog = _catalog()
    for table in (labels.ACTIONS, labels.OBJECT_TYPES, labels.OUTCOMES):
        for code, label in table.items():
            words = _zh(catalog, label)
            assert CJK.search(words) and words != code, (code, str(label), words)


def _views(app):
    from flask_appbuilder import ModelView

    return [v for v in app.appbuilder.baseviews if isinstance(v, ModelView)]


def test_every_select_list_offers_words_not_codes(app):
    """Every choice of every select list of every add and edit screen reads in zh_TW."""
    from wtforms import SelectField, SelectMultipleField

    codes = []
    with app.test_request_context("/"):
        for view in _views(app):
            for form_class in {view.add_form, view.edit_form} - {None}:
                for field in form_class():
                    if not isinstance(field, (SelectField, SelectMultipleField)):
                        continue
                    for value, label, *_ in field.iter_choices():
                        if not CJK.search(str(label)) or str(label) == str(value):
                            codes.append((type(view).__name__, field.name, value, str(label)))
    assert not codes, "\n".join(map(str, codes))


def test_every_screen_title_reads_in_chinese(app):
    """List, detail, add and edit titles of every screen (FAB's default would be 'Add Form Section')."""
    untitled = []
    with app.test_request_context("/"):
        for view in _views(app):
            for attr, permission in (("list_title", "can_list"), ("show_title", "can_show"),
                                     ("add_title", "can_add"), ("edit_title", "can_edit")):  # fmt: skip
                if view.base_permissions and permission not in view.base_permissions:
                    continue  # a screen it does not have
                if not CJK.search(str(getattr(view, attr))):
                    untitled.append((type(view).__name__, attr, str(getattr(view, attr))))
    assert not untitled, "\n".join(map(str, untitled))


def test_every_rest_column_label_reads_in_chinese(app):
    """The REST APIs' ``label_columns`` (FAB's default would be 'Ftp Allowed', 'Receiving Agency')."""
    from flask_appbuilder import ModelRestApi

    unlabelled = []
    with app.test_request_context("/"):
        for api in app.appbuilder.baseviews:
            if not isinstance(api, ModelRestApi):
                continue
            allowed = set(api.base_permissions or ("can_post", "can_put"))
            columns = {
                *api.list_columns,
                *api.show_columns,
                *(api.add_columns if "can_post" in allowed else ()),
                *(api.edit_columns if "can_put" in allowed else ()),
            }
            for column in sorted(columns):
                label = str(api.label_columns.get(column, column))
                if not CJK.search(label) and column != "id":
                    unlabelled.append((type(api).__name__, column, label))
    assert not unlabelled, "\n".join(map(str, unlabelled))


@pytest.mark.browser
def test_the_auditor_reads_the_trail_and_the_query_history_in_words(live_server, browser):
    from tests.conftest import ARTIFACTS, DEMO_PASSWORD

    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-TW")
    for user in ("clerk", "auditor"):  # the clerk leaves a query (and a refusal) in the trail
        page.goto(f"{live_server}/login/")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.click("input[type=submit], button[type=submit]")
        if user == "clerk":
            page.goto(f"{live_server}/query/form/tax.income")
            page.fill("#case_no", "1151203-0500")
            page.select_option("#business_item", "TAX-EXEMPT")
            page.fill("#in-id_no", "A123456789")
            page.press("#in-id_no", "Enter")
            page.wait_for_load_state("networkidle")
            page.goto(f"{live_server}/logout/")
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{live_server}/auditeventview/list/")
    page.screenshot(path=str(ARTIFACTS / "words-audit-trail.png"), full_page=True)
    trail = page.inner_text("body")
    assert "查詢" in trail and "登入" in trail and "示範縣地方稅務局" in trail
    for code in ("query_reopen", "source_test", "QueryLog", "refused"):
        assert code not in trail
    page.goto(f"{live_server}/query/history/?everyone=1")
    page.screenshot(path=str(ARTIFACTS / "words-query-history.png"), full_page=True)
    history = page.inner_text("#history-table")
    assert "成功" in history and "示範縣地方稅務局" in history and "\tok\t" not in history

#!/usr/bin/env bash
# Refresh the zh_TW catalogue: our strings and Flask-AppBuilder's own (FAB
# ships no zh_TW). Keeps existing translations; new strings arrive empty.
#   scripts/i18n.sh          extract + update + compile
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
FAB=$($PY -c 'import flask_appbuilder, os; print(os.path.dirname(flask_appbuilder.__file__))')
mkdir -p build
$PY -m babel.messages.frontend extract -F babel.cfg -k lazy_gettext -k _l -k _ -o build/fab.pot "$FAB"
$PY -m babel.messages.frontend extract -F babel.cfg -k lazy_gettext -k _l -k _ -o build/app.pot app
$PY - <<'PY'
from babel.messages.pofile import read_po, write_po
with open("build/fab.pot", "rb") as f:
    cat = read_po(f)
with open("build/app.pot", "rb") as f:
    for m in read_po(f):
        if m.id:
            cat[m.id] = m
with open("build/all.pot", "wb") as f:
    write_po(f, cat, omit_header=False)
PY
$PY -m babel.messages.frontend update --no-fuzzy-matching --ignore-obsolete -i build/all.pot -d app/translations -l zh_TW
$PY -m babel.messages.frontend compile -d app/translations --statistics
mkdir -p app/translations/zh_Hant_TW/LC_MESSAGES
$PY -m babel.messages.frontend compile -l zh_Hant_TW -i app/translations/zh_TW/LC_MESSAGES/messages.po \
  -o app/translations/zh_Hant_TW/LC_MESSAGES/messages.mo

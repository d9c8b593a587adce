# Sourced by run.sh and test.sh: a .venv with the pinned requirements and the
# compiled translations. REQUIREMENTS picks the file (default requirements.txt).
REQUIREMENTS=${REQUIREMENTS:-requirements.txt}
PYTHON_BIN=${PYTHON_BIN:-$(command -v python3.11 || command -v python3)}
if ! "$PYTHON_BIN" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)'; then
  echo "Python 3.11 or newer is required (found $("$PYTHON_BIN" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON_BIN" -m venv .venv
fi
stamp=".venv/.installed-$(cat requirements.txt "$REQUIREMENTS" | sha256sum | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  echo "==> installing $REQUIREMENTS"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$REQUIREMENTS"
  touch "$stamp"
fi
# shellcheck disable=SC1091
. .venv/bin/activate
pybabel compile -d app/translations >/dev/null 2>&1
# Babel names Taiwan's locale zh_Hant_TW: the same catalogue serves both names.
mkdir -p app/translations/zh_Hant_TW/LC_MESSAGES
pybabel compile -l zh_Hant_TW -i app/translations/zh_TW/LC_MESSAGES/messages.po \
  -o app/translations/zh_Hant_TW/LC_MESSAGES/messages.mo >/dev/null 2>&1
export FLASK_APP=run.py

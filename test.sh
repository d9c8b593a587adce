#!/usr/bin/env bash
# The whole suite: set-up as ./run.sh does, then ruff, `flask db check` on
# throwaway databases, and pytest (SQLite and the PostgreSQL server at
# 127.0.0.1:5432, MariaDB at 127.0.0.1:3306; a real SMTP server; Chromium).
# See README.md, "Running the tests", for what it needs and how to point elsewhere.
set -euo pipefail
cd "$(dirname "$0")"

# System packages the tests need.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
ldconfig -p | grep -q "libodbc.so" || missing+=(unixodbc)  # pyodbc needs it
command -v redis-server >/dev/null || missing+=(redis-server)  # the sign-in limit kept in Redis (test_passwords.py)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)  # in front of the platform (test_https.py)
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-noto-cjk)
[ -e /usr/share/fonts/truetype/arphic/uming.ttc ] || missing+=(fonts-arphic-uming)  # PDF printouts embed it
# the CNS 11643 全字庫 fonts: the PDFs' fallback for rare characters (CJK Extension A/B) UMing lacks
[ -e /usr/share/fonts/truetype/cns11643/TW-Sung-Ext-B-98_1.ttf ] || missing+=(fonts-cns11643-sung fonts-cns11643-kai)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

REQUIREMENTS=requirements-dev.txt . scripts/setup.sh

# axe-core (npm) for the browser stories' accessibility checks (tests/package.json, locked)
[ -f tests/node_modules/axe-core/axe.min.js ] || npm ci --prefix tests --no-audit --no-fund

echo "==> ruff"
ruff check .
ruff format --check .

export TEST_POSTGRES_URL=${TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}

echo "==> flask db check"
python scripts/db_check.py

echo "==> pytest"
python -m pytest "$@"

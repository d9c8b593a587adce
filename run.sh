#!/usr/bin/env bash
# Serve the demo: installs what is missing, migrates, seeds, and serves on
# http://127.0.0.1:${PORT:-8080} with gunicorn.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh

PORT=${PORT:-8080}
export DEMO_PASSWORD=${DEMO_PASSWORD:-Demo-2026}
export OUTBOX_THREAD=${OUTBOX_THREAD:-1}

if [ -z "${MAIL_SERVER:-}" ]; then
  # No SMTP server given: catch the demo's e-mails in instance/mail/.
  export MAIL_SERVER=127.0.0.1 MAIL_PORT=${MAIL_PORT:-8025}
  mkdir -p instance
  python -m app.simulators.mailcatcher --port "$MAIL_PORT" --dir instance/mail > instance/mailcatcher.log 2>&1 &
  CATCHER=$!
  trap 'kill $CATCHER 2>/dev/null || true' EXIT
fi

flask platform check
flask db upgrade
flask roles sync > /dev/null
flask seed demo

cat <<TXT

  跨機關便民服務平台 / Cross-agency citizen service platform
  http://127.0.0.1:${PORT}/

  Demo logins (password: ${DEMO_PASSWORD}):
    admin            系統管理員 Admin
    designer         表單設計 FormDesigner
    clerk            查詢人員 Clerk (local tax bureau)
    clerk.social     查詢人員 Clerk (social affairs)
    notifier         通報作業員 Notifier (household office)
    supervisor.land  案件主管 Supervisor (land office)   handler.land  承辦人 Handler
    supervisor.tax   案件主管 Supervisor (tax bureau)    handler.tax   承辦人 Handler
    transfer.social  傳遞承辦人 Transferor (social)       transfer.tax  傳遞承辦人 Transferor (tax)
    manager          業務主管 Manager
    auditor          稽核人員 Auditor
  E-mails: ${MAIL_SERVER}:${MAIL_PORT:-25}$( [ -n "${CATCHER:-}" ] && echo " (saved in instance/mail/)" )

TXT
PORT=$PORT gunicorn -c gunicorn.conf.py run:app

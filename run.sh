#!/usr/bin/env bash
# Serve the demo: installs what is missing, migrates, seeds, and serves on
# https://127.0.0.1:${PORT:-8443} with gunicorn (plain http://127.0.0.1:${HTTP_PORT:-8080}
# only redirects there), the background workers
# (`flask worker outbox|sealer|ftp-server|ftp-poller|payments|retention`) beside it.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup.sh

PORT=${PORT:-8443}            # HTTPS, with the demo PKI's server certificate
HTTP_PORT=${HTTP_PORT:-8080}  # plain HTTP: a redirect to HTTPS, nothing else
export DEMO_PASSWORD=${DEMO_PASSWORD:-Demo-2026}

SIM_PORT=${SIM_PORT:-8031}
PAYGATE_PORT=${PAYGATE_PORT:-8032}
export PAYGATE_URL=${PAYGATE_URL:-http://127.0.0.1:$PAYGATE_PORT}
export DEMO_SOURCES_DIR=${DEMO_SOURCES_DIR:-$PWD/instance/sources}
export SIMULATOR_URL=${SIMULATOR_URL:-http://127.0.0.1:$SIM_PORT}
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-https://127.0.0.1:$PORT}
CARD_PKI=${CARD_PKI:-$PWD/instance/pki/cards}
# TLS_CERT_FILE= (empty) serves plain HTTP, for a proxy that terminates TLS (docs/operations.md).
export TLS_CERT_FILE=${TLS_CERT_FILE-$CARD_PKI/tls/chain.pem} TLS_KEY_FILE=${TLS_KEY_FILE-$CARD_PKI/tls/server.key}
# A browser keeps HSTS per host name, every port of it: the demo's (localhost) is short.
export HSTS_MAX_AGE=${HSTS_MAX_AGE:-3600}
mkdir -p instance
# Everything started here stops with the script: SIGTERM to each (the workers
# finish their round), then wait for them.
BACKGROUND=()
stop_all() {
  trap - EXIT INT TERM
  if [ ${#BACKGROUND[@]} -gt 0 ]; then
    kill -TERM "${BACKGROUND[@]}" 2>/dev/null || true
    wait "${BACKGROUND[@]}" 2>/dev/null || true
  fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${MAIL_SERVER:-}" ]; then
  # No SMTP server given: catch the demo's e-mails in instance/mail/.
  export MAIL_SERVER=127.0.0.1 MAIL_PORT=${MAIL_PORT:-8025}
  python -m app.simulators.mailcatcher --port "$MAIL_PORT" --dir instance/mail > instance/mailcatcher.log 2>&1 &
  BACKGROUND+=($!)
  CATCHER=1
fi

flask platform check
flask db upgrade
flask roles sync > /dev/null
# The demo card PKI, before the seeding, which binds clerk.card to its GCA card
# (idempotent: a second run keeps the cards and refreshes the CRLs):
# its TLS server certificate is gunicorn's, its roots the ones card sign-in trusts
# (CERT_TRUST_ROOTS, CERT_CA_BUNDLE default to it). CRLs are published on
# http://127.0.0.1:$CARD_PKI_PORT/crl/ and the CAs' OCSP responders (openssl ocsp)
# answer on the next four ports; the certificates name those ports.
CARD_PKI_PORT=${CARD_PKI_PORT:-8040}
export DEMO_CARD_PKI_DIR=$CARD_PKI DEMO_CARD_PIN=${DEMO_CARD_PIN:-1234}
python -m app.simulators.cardpki "$CARD_PKI" --port-base "$CARD_PKI_PORT" --pin "$DEMO_CARD_PIN" > /dev/null
python -m app.simulators.ocsp "$CARD_PKI" > instance/ocsp.log 2>&1 &
BACKGROUND+=($!)
flask seed demo

# The citizen's local signing component (a simulator of HiPKI's, holding the demo
# cards' keys), where card sign-in pages ask for signatures; it accepts pages of
# this platform's origins only. Swap the inserted card with
#   curl -X POST http://127.0.0.1:$SIGNER_PORT/control/card -H 'Content-Type: application/json' -d '{"name": "business-bank"}'
SIGNER_PORT=${SIGNER_PORT:-61161}
export CERT_SIGNER_URL=${CERT_SIGNER_URL:-http://127.0.0.1:$SIGNER_PORT}
python -m app.simulators.signer "$CARD_PKI" --port "$SIGNER_PORT" --card "${SIGNER_CARD:-citizen-wang}" \
  --origin "$PUBLIC_BASE_URL" --origin "https://localhost:$PORT" > instance/signer.log 2>&1 &
BACKGROUND+=($!)

# The household e-gate and the business registry of the demo world.
python -m app.simulators.serve --port "$SIM_PORT" --seed-dir "$DEMO_SOURCES_DIR" > instance/simulators.log 2>&1 &
BACKGROUND+=($!)
# The payment gateway (card, chip card, bank account) the demo's payment providers use.
python -m app.simulators.paygate --port "$PAYGATE_PORT" > instance/paygate.log 2>&1 &
BACKGROUND+=($!)
# Background work, each kind in a process of its own (see docs/operations.md):
# the mail outbox, the audit sealer, the FTPS channel for transfers (port
# ${TRANSFER_FTP_PORT:-2121}), the poller that registers its uploads, and the
# payments worker (pending payments asked of the gateway, refunds retried), the
# retention worker (monthly archives, dormant accounts, overdue account reviews) and
# the anomalies worker (the anomaly rules over the query log, flags within a minute).
for kind in outbox sealer ftp-server ftp-poller payments retention anomalies; do
  flask worker "$kind" > "instance/worker-$kind.log" 2>&1 &
  BACKGROUND+=($!)
done

cat <<TXT

  跨機關便民服務平台 / Cross-agency citizen service platform
  https://127.0.0.1:${PORT}/  (http://127.0.0.1:${HTTP_PORT}/ redirects there)
  The server certificate is the demo PKI's: a browser warns until it trusts
  ${CARD_PKI}/roots.pem (or accept the warning).

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
    clerk.card       查詢人員 Clerk (tax bureau): certificate card gov-clerk-card plus password
  Card sign-in: https://127.0.0.1:${PORT}/signin/card/ through the signing component simulator on
    ${CERT_SIGNER_URL} (card inserted: ${SIGNER_CARD:-citizen-wang}; instance/signer.log); a citizen's
    first sign-in asks the full ID number (cards.json: id_number)
  Transfer keys: instance/pki/staff/transfer.{social,tax}/identity.p12 (PIN ${DEMO_PKI_PIN:-1234})
  Certificate cards: ${CARD_PKI}/cards.json, cards/*/sign.p12 (PIN ${DEMO_CARD_PIN}); OCSP on
    127.0.0.1:$((CARD_PKI_PORT + 1))-$((CARD_PKI_PORT + 4)), CRLs on http://127.0.0.1:${CARD_PKI_PORT}/crl/ (instance/ocsp.log)
  FTPS: 127.0.0.1:${TRANSFER_FTP_PORT:-2121} (platform accounts of transfer officers)
  Payment gateway simulator: ${PAYGATE_URL} (instance/paygate.log); fees under 繳費 (docs/payments.md)
  Logs: instance/worker-*.log (outbox, sealer, ftp-server, ftp-poller, payments, retention, anomalies), instance/simulators.log
  E-mails: ${MAIL_SERVER}:${MAIL_PORT:-25}$( [ -n "${CATCHER:-}" ] && echo " (saved in instance/mail/)" )

TXT
python -m app.lib.httpsredirect --bind "127.0.0.1:$HTTP_PORT" --to "$PUBLIC_BASE_URL" > instance/redirect.log 2>&1 &
BACKGROUND+=($!)
PORT=$PORT gunicorn -c gunicorn.conf.py run:app &
GUNICORN=$!
BACKGROUND+=($GUNICORN)
# Until gunicorn ends (or this script is stopped): then everything stops with it.
wait "$GUNICORN"

#!/usr/bin/env bash
# The seed's curl example. NUVLYX_BASE_URL and NUVLYX_CA (the demo's cert.pem) come from the environment.
curl -sS -o /dev/null -w "%{http_code}\n" --cacert "$NUVLYX_CA" \
  "${NUVLYX_BASE_URL:-https://api.nuvlyx.com}/api/v1/external/orders" \
  -H "Authorization: Bearer ${NUVLYX_TOKEN}"

#!/usr/bin/env bash
# Installs the Debian packages the test suite needs when they are missing: PostgreSQL 15 server
# binaries (the tests start a throwaway cluster with initdb/pg_ctl) and Chromium (browser tests);
# with the argument `bench`, also wrk (the HTTP load generator of bench/ops.py).
set -euo pipefail
need=()
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ "${1:-}" = bench ]; then command -v wrk >/dev/null 2>&1 || need+=(wrk); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "system-deps: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

#!/usr/bin/env bash
# Installs Debian's chromium when it is missing. The web UI's browser tests
# (tests/integration/test_webui.py) drive it headless with Playwright through
# `executable_path`; Playwright's own browser downloads are never used.
set -euo pipefail

CHROMIUM=${MESOS_TEST_CHROMIUM:-/usr/bin/chromium}

if [ -x "$CHROMIUM" ]; then
    echo "==> chromium: already installed ($CHROMIUM)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium: chromium is not installed and this is not root; run as root: apt-get install -y --no-install-recommends chromium" >&2
    exit 1
fi
echo "==> installing chromium (Debian package); this takes a minute"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends chromium >/dev/null
[ -x "$CHROMIUM" ] || { echo "install-chromium: apt-get finished but there is no $CHROMIUM" >&2; exit 1; }
echo "==> chromium: installed ($(dpkg-query -W -f='${Version}' chromium))"

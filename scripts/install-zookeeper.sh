#!/usr/bin/env bash
# Installs Debian's ZooKeeper server (and the Java runtime it pulls in) when it is
# missing. The tests and `make run-ha` start their own standalone server from the
# package's jars (see src/mesos/testing/zk.py); the system service is not used.
set -euo pipefail

jar_present() {
    [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null
}

if jar_present; then
    echo "==> zookeeper: already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-zookeeper: ZooKeeper is not installed and this is not root; run as root: apt-get install -y --no-install-recommends zookeeper" >&2
    exit 1
fi
echo "==> installing zookeeper (Debian package, with a Java runtime); this takes a minute"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends zookeeper >/dev/null
# The package enables a system service on port 2181; tests run their own servers.
if command -v systemctl >/dev/null && systemctl is-active --quiet zookeeper 2>/dev/null; then
    systemctl stop zookeeper || true
fi
jar_present || { echo "install-zookeeper: apt-get finished but no ZooKeeper jar in /usr/share/java" >&2; exit 1; }
echo "==> zookeeper: installed ($(dpkg-query -W -f='${Version}' zookeeper))"

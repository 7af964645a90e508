#!/usr/bin/env bash
# Installs what Simpul's build, tests and benchmarks need on a fresh Debian
# machine. Idempotent: packages already present are not fetched again.
set -euo pipefail

DEBIAN_PACKAGES=(
  tshark            # reference decoder and dumpcap for tests
  tcpreplay
  iperf3
  dnsmasq-base      # DNS server in test namespaces
  softflowd pmacct nfdump   # peers for the replay benchmark
  nftables iproute2 # enforcement and test topologies
  dnsutils curl wget openssl python3 procps time iputils-ping ethtool
  chromium nodejs   # dashboard tests in a real browser (npm ships with nodejs)
  prometheus        # promtool and a server: the /metrics test checks the scrape and runs the dashboard's queries
  poppler-utils     # pdftotext: tests read the monthly report PDFs back
  clickhouse-server clickhouse-client  # the ClickHouse flow store's tests and bench (18.16+)
  postgresql        # the PostgreSQL control store's tests (initdb/postgres on a temp dir; the package creates the postgres account they run as)
)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: Debian packages present"

# Browser tests: playwright-core only (it drives Debian's chromium; it never
# downloads a browser).
if [ -f tests/browser/package-lock.json ] && [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi

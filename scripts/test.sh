#!/usr/bin/env bash
# The test command of the README: sets up everything the tests need on a fresh machine, then runs them.
# The tests start their own real servers (tansu broker, Valkey) on free 127.0.0.1 ports.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,transcribe]'
# Debian tools some tests use: promtool (Prometheus rule tests), chromium (the browser test), redis-server
# (the Redis-persistence fault tests), and a JDK + Maven for Apache Kafka (the apache_kafka tests).
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "note: ${need[*]} not installed; the tests that need them are skipped outside CI" >&2
  fi
fi
# Apache Kafka's jars from Maven Central into .cache/kafka (git-ignored; does nothing once they are there).
if command -v mvn >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then
  bash scripts/fetch_kafka.sh >/dev/null
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"

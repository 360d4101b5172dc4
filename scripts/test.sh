#!/usr/bin/env bash
# Install jupyter-berth with its test dependencies, make sure everything the tests need is
# running (Docker engine, the kernel image, PostgreSQL), then run the test suite.
# Re-runs reuse what is there: an unchanged image recipe is not rebuilt.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "installing jupyter-berth and test dependencies"
python3 -m pip install -q --disable-pip-version-check -e '.[test,postgres,server,hub]' 2>&1 | grep -v "Running pip as the 'root' user" || true

step "container engine"
berth engine up

step "kernel image"
berth images bootstrap

step "PostgreSQL"
BERTH_TEST_POSTGRES_URL=$(bash scripts/postgres-up.sh | tail -n 1)
export BERTH_TEST_POSTGRES_URL

step "tests"
python3 -m pytest -p no:cacheprovider "$@"
step "done"

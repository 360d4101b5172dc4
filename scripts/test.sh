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
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test,postgres,server,hub,ldap,docs]'
command -v configurable-http-proxy >/dev/null || npm install -g --silent configurable-http-proxy@5  # JupyterHub's proxy (hub tests)

step "JupyterLab extension: build and unit tests (skipped when unchanged)"
bash scripts/build-labextension.sh --test

step "container engine"
berth engine up

step "Chromium for the browser tests (Debian's; no browser is ever downloaded)"
command -v chromium >/dev/null || { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }

step "Prometheus and OpenLDAP for the dashboard and login tests (Debian's; started by the tests, on loopback)"
apt_install() { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "$@" >/dev/null; }; }
command -v prometheus >/dev/null || apt_install prometheus
{ command -v slapd >/dev/null || [ -x /usr/sbin/slapd ]; } && command -v ldapadd >/dev/null || apt_install slapd ldap-utils

step "kernel and single-user images"
berth images bootstrap --all

step "PostgreSQL"
BERTH_TEST_POSTGRES_URL=$(bash scripts/postgres-up.sh | tail -n 1)
export BERTH_TEST_POSTGRES_URL
BERTH_TEST_REGISTRY=$(bash scripts/registry-up.sh | tail -n 1); export BERTH_TEST_REGISTRY  # local registry for image pull/push tests

step "tests"
# tests/test_release.py builds the sdist and wheel, installs the wheel in a clean virtualenv and
# runs the sidebar end to end in Chromium from there (scripts/ui-test.sh; run that script alone
# to refresh the screenshots in docs/images).
python3 -m pytest -p no:cacheprovider "$@"
step "done"

#!/usr/bin/env bash
# Build the JupyterLab extension (labextension/) into core/labextension, which ships in the
# Python package as jupyter_berth/labextension and in the wheel's data files as
# share/jupyter/labextensions/jupyter-berth.
#
# Idempotent and fast when nothing changed: node packages are installed only when
# package.json / yarn.lock changed, and the build runs only when a hash of the sources
# (src, style, schema, package.json, yarn.lock, tsconfig) differs from the last build's.
# In an editable install (pip install -e) it also links the build into
# {sys.prefix}/share/jupyter/labextensions/jupyter-berth so `jupyter lab` shows it.
#
# Usage: bash scripts/build-labextension.sh [--test] [--force]
#   --test   also run the unit tests (Jest) when the sources changed since they last passed
#   --force  build even when the sources are unchanged
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ext=$root/labextension
out=$root/core/labextension
run_tests=0 force=0
for arg in "$@"; do
  case $arg in
    --test) run_tests=1 ;;
    --force) force=1 ;;
    *) echo "unknown option $arg (expected --test or --force)" >&2; exit 2 ;;
  esac
done

if ! command -v node >/dev/null; then
  echo "Node.js (>= 20) is needed to build the JupyterLab extension; install it (e.g. from nodejs.org) and re-run." >&2
  exit 1
fi
if ! command -v jlpm >/dev/null; then
  python3 -m pip install -q --disable-pip-version-check 'jupyterlab>=4.6' 2>&1 | grep -v "Running pip as the 'root' user" || true
fi

hash_of() { (cd "$ext" && find "$@" -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16); }

# 1. node packages, when the manifest or the lock changed
deps_hash=$(hash_of package.json yarn.lock .yarnrc.yml)
deps_stamp=$ext/node_modules/.berth-deps-hash
if [ ! -f "$deps_stamp" ] || [ "$(cat "$deps_stamp")" != "$deps_hash" ]; then
  echo "labextension: installing node packages (jlpm install)"
  t0=$(date +%s)
  (cd "$ext" && jlpm install 2>&1 | grep -E "YN0001|YN0009|YN0028|Error|Done" || true)
  [ -d "$ext/node_modules/@jupyter/builder" ] || { echo "labextension: jlpm install failed (see above)" >&2; exit 1; }
  hash_of package.json yarn.lock .yarnrc.yml > "$deps_stamp"
  echo "labextension: node packages installed in $(( $(date +%s) - t0 )) s"
fi

# 2. the build, when the sources changed (or the output is missing)
src_hash=$(hash_of src style schema package.json yarn.lock tsconfig.json)
build_stamp=$ext/node_modules/.berth-build-hash
if [ "$force" = 1 ] || [ ! -f "$build_stamp" ] || [ "$(cat "$build_stamp")" != "$src_hash" ] \
   || [ ! -f "$out/package.json" ] || ! ls "$out"/static/remoteEntry.*.js >/dev/null 2>&1; then
  echo "labextension: building into core/labextension"
  t0=$(date +%s)
  rm -rf "$out"
  (cd "$ext" && jlpm build:lib && jlpm build:labextension) 2>&1 | grep -v "^$\|Compilation starting\|Compilation finished" || true
  [ -f "$out/package.json" ] || { echo "labextension: the build produced no $out/package.json" >&2; exit 1; }
  cp "$ext/install.json" "$out/install.json"
  echo "$src_hash" > "$build_stamp"
  echo "labextension: built in $(( $(date +%s) - t0 )) s"
else
  echo "labextension: up to date ($src_hash)"
fi

# 3. unit tests, when asked and the sources changed since they last passed
if [ "$run_tests" = 1 ]; then
  test_hash=$(hash_of src tests package.json tsconfig.json tsconfig.test.json)
  test_stamp=$ext/node_modules/.berth-tests-passed
  if [ ! -f "$test_stamp" ] || [ "$(cat "$test_stamp")" != "$test_hash" ]; then
    (cd "$ext" && jlpm test --silent)
    echo "$test_hash" > "$test_stamp"
  else
    echo "labextension: unit tests passed before for these sources"
  fi
fi

# 4. an editable install serves the extension from this checkout
pkg_dir=$(python3 -c 'import os, jupyter_berth; print(os.path.dirname(jupyter_berth.__file__))' 2>/dev/null || true)
if [ "$pkg_dir" = "$root/core" ] && [ -z "${BERTH_NO_LABEXTENSION_LINK:-}" ]; then
  dest=$(python3 -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions/jupyter-berth
  if [ -L "$dest" ] || [ ! -e "$dest" ]; then
    if [ "$(readlink "$dest" 2>/dev/null)" != "$out" ]; then
      mkdir -p "$(dirname "$dest")"
      ln -sfn "$out" "$dest"
      echo "labextension: linked $dest -> $out"
    fi
  else
    echo "labextension: $dest is a copy from an earlier install; remove it to use this checkout's build" >&2
  fi
fi

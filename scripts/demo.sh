#!/usr/bin/env bash
# One command from a fresh machine to JupyterLab whose kernels run in quota-bounded containers:
# installs jupyter-berth, starts the Docker engine (installing it on Debian/Ubuntu as root),
# builds the kernel image without a registry, writes the Berth kernelspecs and starts
# JupyterLab on http://127.0.0.1:8888. Re-running is fast (nothing is rebuilt); Ctrl-C stops it.
# Options are passed on to `jupyter lab` (for example --port=9999).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[server]' jupyterlab
bash scripts/build-labextension.sh   # the sidebar, built once and linked into this environment
berth engine up
berth images bootstrap
berth kernelspecs sync
# A wheel install enables the extension by itself; an editable install needs it said once.
jupyter server extension enable --py jupyter_berth.server --sys-prefix >/dev/null 2>&1 || \
  jupyter server extension enable jupyter_berth.server --sys-prefix >/dev/null
workdir=${BERTH_DEMO_DIR:-$HOME/berth-notebooks}
mkdir -p "$workdir"
# Kernels run as uid 1000 inside their containers: let them write next to the notebooks.
[ "$(id -u)" = 0 ] && chown 1000:100 "$workdir" || true
port=${BERTH_DEMO_PORT:-8888}
token=${BERTH_DEMO_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_hex(16))')}
echo
echo "JupyterLab with Berth kernels: http://127.0.0.1:$port/lab?token=$token"
echo "Pick a kernel ending in '(Berth)': it runs in its own container. Ctrl-C stops JupyterLab."
echo
allow_root=""; [ "$(id -u)" = 0 ] && allow_root="--allow-root"
exec jupyter lab --no-browser --ip=127.0.0.1 --port="$port" $allow_root \
  --ServerApp.root_dir="$workdir" --IdentityProvider.token="$token" "$@"

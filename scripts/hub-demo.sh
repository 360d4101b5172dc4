#!/usr/bin/env bash
# The one-command Berth hub demo: from a fresh Debian/Ubuntu machine (as root) to a JupyterHub
# on http://127.0.0.1:8000 whose users' servers and kernels run in quota-bounded containers.
#
# It installs jupyter-berth with JupyterHub (and the idle culler), starts the Docker engine
# (installing Debian's docker.io if none runs), installs configurable-http-proxy (npm) if
# missing, builds the kernel and single-user images without any registry, writes the demo's
# configuration into a state directory and starts JupyterHub in the foreground, with the
# Berth spawner and service, demo users alice, bob and teacher in the group class-a and a
# group policy. Re-running is fast: nothing is rebuilt unless it changed. Ctrl-C stops the
# hub, its proxy and service, every user's server and kernel.
#
# DEMO ONLY: users log in with a shared password (DummyAuthenticator). Keep it on 127.0.0.1.
#
# Environment: BERTH_DEMO_PORT (8000), BERTH_DEMO_STATE (/var/lib/berth-demo as root,
# ~/.local/share/berth-demo otherwise), BERTH_DEMO_PASSWORD (berth-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
port=${BERTH_DEMO_PORT:-8000}
password=${BERTH_DEMO_PASSWORD:-berth-demo}
if [ "$(id -u)" = 0 ]; then state_default=/var/lib/berth-demo; else state_default=$HOME/.local/share/berth-demo; fi
state=${BERTH_DEMO_STATE:-$state_default}
step() { printf '\n== %s\n' "$*"; }

step "installing jupyter-berth, JupyterHub and the idle culler"
python3 -m pip install -q --disable-pip-version-check -e "$repo[hub,server]" jupyterhub-idle-culler 2>&1 \
  | grep -v "Running pip as the 'root' user" || true

step "container engine"
berth engine up

if ! command -v configurable-http-proxy >/dev/null 2>&1; then
  step "JupyterHub's proxy (configurable-http-proxy, from npm)"
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    else
      echo "hub-demo: npm is needed for configurable-http-proxy; install Node.js and npm, then re-run" >&2
      exit 1
    fi
  fi
  npm install -g --silent configurable-http-proxy >/dev/null
fi

step "the JupyterLab sidebar (built once; the single-user image installs it with jupyter-berth's wheel)"
bash "$repo/scripts/build-labextension.sh"

step "images: the kernel image and the single-user server image (no registry)"
berth images bootstrap --all

step "configuration in $state"
mkdir -p "$state"
chmod 700 "$state"
cat > "$state/jupyter_berth_config.py" <<EOF
# Written by scripts/hub-demo.sh: the Berth core's settings (ledger, policies), read by the
# Berth service and, through jupyterhub_config.py, by the hub's BerthSpawner.
from jupyter_berth.hub.demo_config import configure_berth
configure_berth(c, state_dir=${state@Q})
EOF
cat > "$state/jupyterhub_config.py" <<EOF
# Written by scripts/hub-demo.sh. DEMO ONLY: a shared password, no real accounts.
from jupyter_berth.hub.demo_config import configure
configure(c, state_dir=${state@Q}, port=${port}, password=${password@Q})
EOF

hub_pid=""
stop_all() {
  trap - INT TERM EXIT
  if [ -n "$hub_pid" ] && kill -0 "$hub_pid" 2>/dev/null; then
    echo; echo "hub-demo: stopping the hub, its servers and kernels..."
    kill -TERM "$hub_pid" 2>/dev/null || true
    wait "$hub_pid" 2>/dev/null || true
  fi
  python3 -c "from jupyter_berth.hub.demo_config import stop_leftovers as s; n = s(${state@Q}); print(f'hub-demo: stopped; {n} leftover container(s) removed' if n else 'hub-demo: stopped')" || true
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

cd "$state"
# Its own session: Ctrl-C reaches the hub once, through stop_all, which lets it stop everything.
# A background job of a script starts with SIGINT ignored, and the hub's services would inherit
# that (and then take the hub's 10 s timeout to stop): give it back its default.
setsid env --default-signal=INT python3 -m jupyterhub -f "$state/jupyterhub_config.py" >"$state/jupyterhub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 1 120); do
  grep -q "JupyterHub is now running" "$state/jupyterhub.log" 2>/dev/null && break
  if ! kill -0 "$hub_pid" 2>/dev/null; then
    echo "hub-demo: JupyterHub did not start; the end of its log:" >&2
    tail -n 30 "$state/jupyterhub.log" >&2
    exit 1
  fi
  sleep 0.5
done
cat <<EOF

  Berth hub demo: http://127.0.0.1:${port}

  Log in as alice, bob or teacher, password: ${password}
  (DEMO ONLY: a shared password and DummyAuthenticator; never expose this hub.)

  The spawn form offers the image version, CPU, memory and folders within the class-a
  policy; in JupyterLab pick "Python 3.11 (Berth)": each kernel gets its own container.
  Log: ${state}/jupyterhub.log. Ctrl-C stops everything.

EOF
# Show spawns and errors as they happen; `wait` (unlike a foreground pipeline) returns at
# once on Ctrl-C or SIGTERM, so the trap stops everything without delay.
tail -n 0 -f "$state/jupyterhub.log" --pid="$hub_pid" | grep --line-buffered -E "\] (User|Berth|Not starting)|\[E " &
wait "$hub_pid" || true

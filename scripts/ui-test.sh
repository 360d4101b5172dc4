#!/usr/bin/env bash
# End-to-end test of the Berth sidebar, as a person uses it: a real `jupyter lab` with the
# berth server extension and real container kernels, driven by Chromium through
# playwright-core (labextension/ui-tests/sidebar.e2e.mjs). Screenshots go to docs/images/.
#
# Needs: the Docker engine and the kernel image (scripts/test.sh brings both up, or
# `berth engine up && berth images bootstrap`), Node.js >= 20, Debian's chromium
# (installed here when missing, as root). Never downloads a browser.
# Everything it starts (JupyterLab, kernels, their containers and network) is stopped at
# the end, pass or fail; what it creates carries its own site label.
#
# Usage: bash scripts/ui-test.sh
#   BERTH_UI_SCREENSHOTS=0     keep docs/images as they are
#   BERTH_UI_JUPYTER=PATH      the `jupyter` to run (e.g. from a venv with the built wheel installed)
#   BERTH_UI_LAB_ARGS="..."    more options for `jupyter lab` (e.g. --ServerApp.log_level=DEBUG)
#   BERTH_UI_NETNS=0           run the browser in the host's network (the default, as root with unshare
#                              and ip: a network namespace of its own, see below)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t_start=$(date +%s)

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -q chromium >/dev/null
  else
    echo "ui-test: Debian's chromium is needed (apt-get install -y chromium)" >&2
    exit 1
  fi
fi
bash scripts/build-labextension.sh
[ -d labextension/node_modules/playwright-core ] || (cd labextension && jlpm install)

tmp=$(mktemp -d /tmp/berth-ui.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/notebooks" "$tmp/config/labconfig" "$tmp/data" "$tmp/runtime" "$tmp/berth-data"
# Kernels run as uid 1000 inside their containers: let them write next to the notebooks.
[ "$(id -u)" = 0 ] && chown 1000:100 "$tmp/notebooks"
site="berth-ui-$(basename "$tmp" | cut -d. -f2 | tr 'A-Z' 'a-z')"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')

# The server extension, a policy with a total the test can exceed (and a per-kernel disk limit it
# can ask over), and a site of its own. This machine has no GPU: one device is *declared* (config),
# so the GPU control's bounds show; the kernels the test starts ask for no GPU share. Usage is
# sampled (every 15 s), so that disk limits are checked where the engine cannot enforce them.
cat > "$tmp/config/jupyter_server_config.json" <<EOF
{
  "ServerApp": {"jpserver_extensions": {"jupyter_berth.server": true}},
  "BerthService": {
    "data_dir": "$tmp/berth-data",
    "site_id": "$site",
    "network_prefix": "berth-ui-",
    "user_subnets": "10.217.0.0/16",
    "stop_timeout": 2,
    "presets": {"small": {"cpu": 0.5, "mem": "256M", "display_name": "Small (½ CPU, 256 MiB)"},
                "standard": {"cpu": 1, "mem": "1G", "display_name": "Standard (1 CPU, 1 GiB)"}},
    "default_policy": {"max_cpu": 2, "max_mem": "2G", "total_cpu": 3, "total_mem": "1G", "max_kernels": 4,
                       "max_gpu": 0.5, "total_gpu": 1, "max_disk": "4G", "total_disk": "6G",
                       "default": {"cpu": 1, "mem": "1G"}}
  },
  "UsageTracker": {"sample_interval": 15, "disk_interval": 60},
  "GpuManager": {
    "devices": [{"uuid": "GPU-declared-ui-0", "name": "Declared 16 GiB GPU", "memory": "16G", "index": 0}],
    "gpu_quantum": 0.25
  }
}
EOF
# No news or update pop-ups over the screenshots.
cat > "$tmp/config/labconfig/page_config.json" <<'EOF'
{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}
EOF

lab_pid=""
cleanup() {
  status=$?
  if [ -n "$lab_pid" ] && kill -0 "$lab_pid" 2>/dev/null; then
    kill -TERM "$lab_pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$lab_pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$lab_pid" 2>/dev/null || true
  fi
  # Whatever this run's site still has in the engine (normally nothing: Lab stops its kernels).
  left=$(/usr/bin/docker ps -aq --filter "label=io.jupyter.berth.site=$site" 2>/dev/null || true)
  [ -n "$left" ] && /usr/bin/docker rm -f $left >/dev/null 2>&1 || true
  nets=$(/usr/bin/docker network ls -q --filter "label=io.jupyter.berth.site=$site" 2>/dev/null || true)
  [ -n "$nets" ] && /usr/bin/docker network rm $nets >/dev/null 2>&1 || true
  if [ "$status" != 0 ]; then
    cp "$tmp/lab.log" /tmp/berth-ui-lab.log 2>/dev/null || true
    echo "ui-test: FAILED; JupyterLab's log is in /tmp/berth-ui-lab.log; its last lines:" >&2
    tail -n 25 "$tmp/lab.log" >&2 || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT INT TERM

# The browser runs in a network namespace of its own (only loopback) where the host allows it: the
# engine adds and removes interfaces on the host all the time (this test's containers, other runs'
# networks) and Chromium aborts requests in flight when it sees that (ERR_NETWORK_CHANGED, "Failed to
# fetch"). JupyterLab then listens on a UNIX socket, which the script bridges to the namespace's loopback
# (ui-tests/browser.mjs serverUrl), as tests/browser_netns.py does for the other browser tests.
netns=0
if [ "${BERTH_UI_NETNS:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null; then
  netns=1
fi
sock="$tmp/lab.sock"
if [ "$netns" = 1 ]; then
  listen=(--ServerApp.sock="$sock")
  url="http://localhost"
  probe() { curl -fsS -o /dev/null --unix-socket "$sock" -H "Authorization: token $token" "$url/berth/api/info"; }
else
  listen=(--ip=127.0.0.1 --port="$port")
  url="http://127.0.0.1:$port"
  probe() { curl -fsS -o /dev/null -H "Authorization: token $token" "$url/berth/api/info"; }
fi

allow_root=""; [ "$(id -u)" = 0 ] && allow_root="--allow-root"
JUPYTER_CONFIG_DIR="$tmp/config" JUPYTER_DATA_DIR="$tmp/data" JUPYTER_RUNTIME_DIR="$tmp/runtime" \
JUPYTERLAB_SETTINGS_DIR="$tmp/config/lab/user-settings" JUPYTERLAB_WORKSPACES_DIR="$tmp/config/lab/workspaces" \
BERTH_USER=researcher \
  "${BERTH_UI_JUPYTER:-jupyter}" lab --no-browser "${listen[@]}" $allow_root \
    --ServerApp.root_dir="$tmp/notebooks" --IdentityProvider.token="$token" \
    --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate ${BERTH_UI_LAB_ARGS:-} \
    > "$tmp/lab.log" 2>&1 &
lab_pid=$!

for _ in $(seq 1 120); do
  probe 2>/dev/null && break
  kill -0 "$lab_pid" 2>/dev/null || { echo "ui-test: JupyterLab exited" >&2; exit 1; }
  sleep 0.5
done
probe || { echo "ui-test: the Berth API did not answer at $url/berth/api/info" >&2; exit 1; }
where=$url; [ "$netns" = 1 ] && where="$sock (the browser in a network namespace of its own)"
echo "ui-test: JupyterLab up at $where after $(( $(date +%s) - t_start )) s"

screens=""
[ "${BERTH_UI_SCREENSHOTS:-1}" != 0 ] && screens="$root/docs/images"
browser=(node labextension/ui-tests/sidebar.e2e.mjs)
socket_env=""
if [ "$netns" = 1 ]; then
  browser=(unshare --net sh -c 'ip link set lo up && exec "$0" "$@"' "${browser[@]}")
  socket_env=$sock
fi
BERTH_UI_URL="$url" BERTH_UI_SOCKET="$socket_env" BERTH_UI_TOKEN="$token" BERTH_UI_SCREENSHOTS="$screens" \
  BERTH_UI_ROOT="$tmp/notebooks" "${browser[@]}"
echo "ui-test: passed in $(( $(date +%s) - t_start )) s"

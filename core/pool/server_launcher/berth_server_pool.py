"""berth_server_pool: a single-user server that has done its imports and waits for its user.

A server-pool container runs this (Berth mounts it read-only; the image needs nothing of
Berth's) with the interpreter that has ``jupyterhub-singleuser``. It imports
jupyter_server, JupyterLab, JupyterHub's single-user extension and every server extension
the image enables (most of a server's start), then listens on ``BERTH_POOL_PORT`` (TCP,
default 50000) for ONE activation, a JSON line::

    {"token": "...", "argv": ["--ip=0.0.0.0", ...], "env": {"JUPYTERHUB_API_TOKEN": ...}, "cwd": "/path"}

``token`` must equal ``BERTH_POOL_TOKEN`` (a per-container secret that only the engine's
holder can read; it leaves the environment at once); anything else is answered
``{"status": "refused"}`` and the listener keeps waiting. ``{"token", "op": "ping"}``
answers ``{"status": "ready"}`` once the imports are done. On a valid activation the
script closes the listener, answers ``{"status": "ok"}``, sets the user's environment
(JupyterHub's token and URLs), changes to ``cwd`` and runs ``jupyterhub-singleuser``
with ``argv`` in this same process. The protocol is the kernel pool's
(``berth-kernel-pool``, jupyter_berth.pool.activation).
"""

import hmac
import importlib
import json
import os
import socket
import sys

TOKEN = os.environ.pop("BERTH_POOL_TOKEN", "").encode()
PORT = int(os.environ.pop("BERTH_POOL_PORT", "50000"))
MAX_MESSAGE = 1 << 20
READ_TIMEOUT = 2.0
#: Imported ahead: what jupyterhub-singleuser and the extensions of berth/singleuser import on start.
PRELOAD = (
    "jupyter_server.serverapp",
    "jupyter_server.services.contents.largefilemanager",
    "jupyter_server.services.kernels.kernelmanager",
    "jupyter_server.services.sessions.sessionmanager",
    "jupyter_server.gateway.managers",
    "jupyterhub.singleuser",
    "jupyterhub.singleuser.extension",
    "jupyterhub.services.auth",
    "jupyterlab",
    "jupyterlab.labapp",
    "jupyterlab.handlers.extension_manager_handler",
    "jupyterlab_server",
    "jupyterlab_server.handlers",
    "jupyter_lsp",
    "jupyter_lsp.serverextension",
    "jupyter_server_terminals",
    "jupyter_server_terminals.app",
    "terminado",
    "notebook_shim",
    "notebook_shim.shim",
    "jupyter_berth.server",
    "jupyter_berth.server.app",
    "jupyter_berth.kernels.provisioner",
    "jupyter_berth.kernels.remote",
    "nbformat",
    "jsonschema",
)

if not TOKEN:
    print("berth_server_pool: BERTH_POOL_TOKEN is not set; refusing to wait for an activation", file=sys.stderr)
    sys.exit(2)
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]  # Berth's mounted folder is not the server's path

for _name in PRELOAD:
    try:
        importlib.import_module(_name)
    except Exception:  # noqa: BLE001 - an image without this extension: it is simply not preloaded
        pass


def _read_line(conn):
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_MESSAGE:
            raise ValueError("activation message too long")
    return data.split(b"\n", 1)[0]


def _reply(conn, **message):
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


def _wait_for_activation(listener):
    """Serve pings and refusals until a valid activation arrives; return (conn, message)."""
    while True:
        conn, _ = listener.accept()
        conn.settimeout(READ_TIMEOUT)
        try:
            message = json.loads(_read_line(conn) or b"{}")
            if not isinstance(message, dict):
                raise ValueError("expected a JSON object")
        except (OSError, ValueError) as e:
            _reply(conn, status="error", message=f"unreadable activation: {e}")
            conn.close()
            continue
        token = str(message.get("token") or "").encode()
        if not hmac.compare_digest(token, TOKEN):
            _reply(conn, status="refused", message="wrong activation token")
            conn.close()
            continue
        if message.get("op") == "ping":
            _reply(conn, status="ready", pid=os.getpid())
            conn.close()
            continue
        return conn, message


def main():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", PORT))
    listener.listen(8)
    conn, message = _wait_for_activation(listener)
    listener.close()
    try:
        argv = [str(a) for a in message.get("argv") or []]
        env = {str(k): str(v) for k, v in (message.get("env") or {}).items()}
        os.environ.update(env)
        # again by path: the user's volume was just mounted over the directory the launcher waited in
        os.chdir(message.get("cwd") or os.getcwd())
        singleuser_main = importlib.import_module("jupyterhub.singleuser").main
    except Exception as e:  # tell the hub, which falls back to a cold spawn
        _reply(conn, status="error", message=f"{type(e).__name__}: {e}")
        conn.close()
        raise
    _reply(conn, status="ok", pid=os.getpid())
    conn.close()
    sys.argv = ["jupyterhub-singleuser", *argv]
    sys.exit(singleuser_main())


if __name__ == "__main__":
    main()

"""The host's package settings serve an image build, and stay out of the image (issue 20, item 11).

A build needs the host's pip configuration (``/etc/pip.conf``: a site's index, perhaps with
credentials) and its extra CA certificates (a proxy's) to reach the package index. Copied
into the build context (``COPY``) they would sit in an image layer, readable by every user
of every kernel and shipped with every pushed image, even when a later step deletes them.
So they are never in the context: :func:`served` serves them over HTTP on the host's
loopback for the length of the build (builds run on the host network), under a path named
by a digest of their content, and the one ``RUN`` step that installs packages fetches them
into ``/tmp/berth-build`` with :data:`FETCH_SCRIPT`, points pip at them (``PIP_CONFIG_FILE``,
``PIP_CERT``) and apt at the CA bundle (``APT_CONFIG``, a config of its own in that folder), and
removes them before the step ends. No layer holds them.

What kernels use *at run time* (a site's package mirror, extra CA certificates for
``%pip install``) is a separate, explicit admin choice: ``berth images bootstrap
--image-pip-conf=FILE --image-ca-dir=DIR`` (:func:`stage_runtime`) copies exactly those into
the image, as ``/etc/pip.conf`` and into the system trust store.

(A BuildKit secret would do the same, but builds go through the engine API, which docker-py
drives with the classic builder.)
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator

#: The fetch script's name in a build context (``context/<name>``).
FETCH_SCRIPT = "berth-build-files.py"
#: The build argument carrying the URL the files are served at ("" when there are none).
BUILD_ARG = "BERTH_BUILD_FILES"
#: The first port tried: a fixed one keeps the build argument, and so the build cache, stable.
PREFERRED_PORT = 47113

_FETCH = r'''"""Fetch the build-only files (pip.conf, CA certificates) of a Berth image build, see
jupyter_berth.imagebuild.build_files; write env.sh for the RUN step to source. Fail-soft."""
import json, os, sys, urllib.request

url, dest = (sys.argv[1:] + ["", "/tmp/berth-build"])[:2]
os.makedirs(dest, exist_ok=True)
env = []
try:
    names = json.load(urllib.request.urlopen(url + "index.json", timeout=10)) if url else []
except OSError as e:
    print(f"berth: build files not reachable at {url} ({e}); building without them", file=sys.stderr)
    names = []
certs = []
for name in names:
    with open(os.path.join(dest, name), "wb") as f:
        f.write(urllib.request.urlopen(url + name, timeout=10).read())
    if name.endswith(".crt"):
        certs.append(os.path.join(dest, name))
if "pip.conf" in names:
    env.append(f"export PIP_CONFIG_FILE={dest}/pip.conf")
if certs:
    bundle = os.path.join(dest, "ca-bundle.pem")
    with open(bundle, "wb") as out:
        for path in ["/etc/ssl/certs/ca-certificates.crt"] + certs:
            if os.path.exists(path):
                out.write(open(path, "rb").read() + b"\n")
    env += [f"export PIP_CERT={bundle}", f"export SSL_CERT_FILE={bundle}", f"export REQUESTS_CA_BUNDLE={bundle}"]
    # apt (a recipe installing Debian packages) trusts the bundle for this step only, through its own config
    with open(os.path.join(dest, "apt.conf"), "w") as f:
        f.write(f'Acquire::https::CAInfo "{bundle}";\n')
    env.append(f"export APT_CONFIG={dest}/apt.conf")
with open(os.path.join(dest, "env.sh"), "w") as f:
    f.write("\n".join(env) + "\n")
'''


def write_fetch_script(context: str) -> None:
    """Put :data:`FETCH_SCRIPT` into ``context/context/`` (next to the recipe's other staged files)."""
    folder = os.path.join(context, "context")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, FETCH_SCRIPT), "w") as f:
        f.write(_FETCH)


def _files(certs: list[str], extra_ca_dir: str | None, pip_conf: str | None) -> dict[str, bytes]:
    out = {}
    for path in certs:
        name = "berth-" + os.path.relpath(path, extra_ca_dir).replace(os.sep, "-")
        with open(path, "rb") as f:
            out[name] = f.read()
    if pip_conf:
        with open(pip_conf, "rb") as f:
            out["pip.conf"] = f.read()
    return out


@contextlib.contextmanager
def served(certs: list[str], extra_ca_dir: str | None, pip_conf: str | None) -> Iterator[dict[str, str]]:
    """Serve the build-only files on 127.0.0.1 while the block runs; yields the build arguments."""
    files = _files(certs, extra_ca_dir, pip_conf)
    if not files:
        yield {BUILD_ARG: ""}
        return
    digest = hashlib.sha256(json.dumps({k: v.hex() for k, v in sorted(files.items())}).encode()).hexdigest()[:24]
    prefix = f"/{digest}/"
    index = json.dumps(sorted(files)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            name = self.path[len(prefix) :] if self.path.startswith(prefix) else None
            body = index if name == "index.json" else files.get(name or "")
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", PREFERRED_PORT), Handler)
    except OSError:  # taken (another build): any port; only the build cache notices
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="berth-build-files", daemon=True)
    thread.start()
    try:
        yield {BUILD_ARG: f"http://127.0.0.1:{server.server_address[1]}{prefix}"}
    finally:
        server.shutdown()
        server.server_close()


def stage_runtime(context: str, pip_conf: str | None = None, ca_dir: str | None = None) -> None:
    """The run-time settings an admin asked for, in ``context/context/runtime/`` (empty when none):
    ``etc/pip.conf`` becomes the image's ``/etc/pip.conf``, ``ca-certificates/*.crt`` join its trust store."""
    root = os.path.join(context, "context", "runtime")
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    os.makedirs(os.path.join(root, "ca-certificates"), exist_ok=True)
    if pip_conf:
        shutil.copyfile(pip_conf, os.path.join(root, "etc", "pip.conf"))
    if ca_dir:
        for base, _dirs, names in os.walk(ca_dir):
            for name in names:
                if name.endswith(".crt"):
                    path = os.path.join(base, name)
                    target = "berth-site-" + os.path.relpath(path, ca_dir).replace(os.sep, "-")
                    shutil.copyfile(path, os.path.join(root, "ca-certificates", target))


__all__ = ["BUILD_ARG", "FETCH_SCRIPT", "served", "stage_runtime", "write_fetch_script"]

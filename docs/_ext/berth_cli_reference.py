"""``.. berth-cli::`` — the command-line reference, captured from ``berth … --help`` at build time.

The tree of subcommands is read from the ``berth`` Application (``subcommands`` of each
traitlets Application, recursively); each command's help is what ``berth <command…> --help``
prints: the console script's own ``BerthApp`` is initialised with those arguments, once per
command, in one fresh interpreter (so no application state leaks into Sphinx). A command whose
help is empty is a build warning.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

from berth_docs_util import escape, heading, list_table
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from traitlets.utils.importstring import import_item

logger = logging.getLogger(__name__)


@dataclass
class Command:
    path: tuple[str, ...]  #: ("images", "build")
    description: str  #: the one line the parent's help gives it
    help: str = ""
    error: str = ""

    @property
    def name(self) -> str:
        return " ".join(("berth",) + self.path)

    @property
    def label(self) -> str:
        return "berth-cli-" + "-".join(("berth",) + self.path)


def command_tree() -> list[Command]:
    """Every command, parents before their subcommands, in the order the help lists them."""
    from jupyter_berth.cli.app import BerthApp

    commands = [Command((), "jupyter-berth's command line.")]

    def walk(app_class, path):
        subcommands = getattr(app_class, "subcommands", None)
        if not isinstance(subcommands, dict):  # Application's own trait: no subcommands
            subcommands = {}
        for name, (target, description) in subcommands.items():
            sub = import_item(target) if isinstance(target, str) else target
            commands.append(Command(path + (name,), " ".join(str(description).split())))
            if isinstance(sub, type):
                walk(sub, path + (name,))

    walk(BerthApp, ())
    return commands


def _forget_singletons() -> None:
    from traitlets.config import SingletonConfigurable

    def clear(klass):
        klass._instance = None
        for sub in klass.__subclasses__():
            clear(sub)

    clear(SingletonConfigurable)


def help_texts(paths: list[tuple[str, ...]]) -> dict[str, str]:
    """``berth <path> --help`` for each path, run in this process as the console script runs it."""
    import contextlib
    import io

    from jupyter_berth.cli.app import BerthApp

    texts = {}
    for path in paths:
        _forget_singletons()  # each command starts as a fresh `berth …` does
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                BerthApp.instance().initialize([*path, "--help"])
            except SystemExit:
                pass
        texts[" ".join(path)] = out.getvalue().rstrip()
    return texts


def capture(commands: list[Command]) -> None:
    """Fill in every command's help, captured in one fresh interpreter (no state leaks into Sphinx)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}  # the defaults, not this machine's
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(os.path.abspath(__file__)), env.get("PYTHONPATH")])
    )
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "import json, sys, berth_cli_reference as m; "
                "print(json.dumps(m.help_texts([tuple(p) for p in json.load(sys.stdin)])))",
            ],
            input=json.dumps([c.path for c in commands]),
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        texts = json.loads(out.stdout) if out.returncode == 0 else {}
        error = "" if out.returncode == 0 else f"exit {out.returncode}: {out.stderr.strip()[-800:]}"
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        texts, error = {}, str(e)
    for command in commands:
        command.help = texts.get(" ".join(command.path), "")
        command.error = error if not command.help else ""


def render(commands: list[Command]) -> list[str]:
    lines: list[str] = []
    for command in commands:
        lines += [f".. _{command.label}:", ""]
        lines += heading(command.name, "=" if len(command.path) <= 1 else "-")
        lines += [escape(command.description), "", ".. code-block:: text", ""]
        lines += ["   " + line if line.strip() else "" for line in command.help.splitlines()]
        lines.append("")
    return lines


def summary(commands: list[Command]) -> list[str]:
    rows = [[f":ref:`{escape(c.name)} <{c.label}>`", escape(c.description)] for c in commands if c.path]
    return list_table(["command", "what it does"], rows, widths=[30, 70])


class BerthCLIDirective(SphinxDirective):
    """Insert the CLI reference: ``:summary:`` for a table of the commands, else every command's help."""

    has_content = False
    option_spec = {"summary": lambda arg: True}

    def run(self):
        commands = command_tree()
        if "summary" in self.options:
            return self.parse_text_to_nodes("\n".join(summary(commands)))
        capture(commands)
        for command in commands:
            if command.error or not command.help:
                logger.warning(
                    "berth-cli: `%s --help` failed: %s",
                    command.name,
                    command.error or "no output",
                    location=self.get_location(),
                )
        return self.parse_text_to_nodes("\n".join(render(commands)), allow_section_headings=True)


def setup(app):
    app.add_directive("berth-cli", BerthCLIDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

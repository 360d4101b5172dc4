"""``.. berth-configuration::`` — the configuration reference, generated from the traitlets classes.

Every module of ``jupyter_berth`` (and its ``kernels``, ``server`` and ``hub`` subpackages) is
imported; every ``traitlets.config.Configurable`` subclass defined there that has configurable
traits of its own is listed with each trait's name, type, default and help. Traits come from
the class and from the Berth mixins it is made of; the service's area managers (``ImageCatalog``,
``ImageVersions``, ``FolderManager``, ``UsageTracker``, ``GpuManager``, ``EnvironmentManager``) are
classes of their own, and the ``c.BerthService.*`` names their settings had are listed under ``BerthService`` with
where each went; traits inherited from other projects (``DockerSpawner``,
``ExtensionApp``, ``Application``) are left to those projects' documentation, except the ones
whose default Berth changes, which are listed with Berth's default.

A module that cannot be imported is a build warning (so ``sphinx-build -W`` fails): the page
would otherwise silently miss its options. A trait without ``help=`` is shown as such and
logged at build time.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import sys
from dataclasses import dataclass, field

from berth_docs_util import escape, heading, list_table, literal, paragraphs
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from traitlets import Enum, TraitType
from traitlets.config import Configurable
from traitlets.traitlets import DefaultHandler

logger = logging.getLogger(__name__)

PACKAGES = ("jupyter_berth", "jupyter_berth.kernels", "jupyter_berth.server", "jupyter_berth.hub")

#: Sections of the page: (module prefix, title, introduction). The first matching prefix wins.
SECTIONS = [
    (
        "jupyter_berth.kernels",
        "Kernel provisioner",
        "Set per kernelspec, in ``metadata.kernel_provisioner.config`` (``berth kernelspecs sync`` writes them), "
        "or for every Berth kernel as ``c.BerthProvisioner.…`` in ``jupyter_server_config.py``.",
    ),
    (
        "jupyter_berth.server",
        "Server extension",
        "``jupyter_server_config.py`` of a user's server (standalone JupyterLab, or the single-user image).",
    ),
    (
        "jupyter_berth.hub",
        "JupyterHub: spawner and Berth service",
        "``BerthSpawner`` in ``jupyterhub_config.py``; ``BerthHubService`` in the deployment's "
        "``jupyter_berth_config.py`` (see the configuration page).",
    ),
    (
        "jupyter_berth.cli",
        "Command line",
        "Options of the ``berth`` subcommands (``--name=value`` on the command line; see the CLI reference for which "
        "command takes which). Every command also reads ``jupyter_berth_config.py`` (``berth info`` lists the files).",
    ),
    (
        "jupyter_berth",
        "The Berth service (core)",
        "``c.BerthService.…`` is read by every front end that embeds or runs the service: the server extension and "
        "provisioner in a standalone JupyterLab, the hub's Berth service, the ``berth`` command and the hub itself "
        "for the spawner's admission: all from ``jupyter_berth_config.py`` in the Jupyter config path (the hub through "
        "``load_subconfig``). The service's area managers (``ImageCatalog``, ``ImageVersions``, ``FolderManager``, "
        "``UsageTracker``, ``GpuManager``, ``EnvironmentManager``), ``WarmPool``, ``SwarmRuntime`` and the hub's "
        "``ServerPool`` are read from the same files.",
    ),
]
SECTION_ORDER = [
    "jupyter_berth",
    "jupyter_berth.kernels",
    "jupyter_berth.server",
    "jupyter_berth.hub",
    "jupyter_berth.cli",
]
#: Classes listed first in their section (the rest follow by name).
CLASS_ORDER = [
    "BerthService",
    "ImageCatalog",
    "ImageVersions",
    "FolderManager",
    "UsageTracker",
    "GpuManager",
    "EnvironmentManager",
    "WarmPool",
    "ServerPool",
    "SwarmRuntime",
    "BerthProvisioner",
    "BerthExtensionApp",
    "BerthSpawner",
    "BerthHubService",
]


#: Sub-headings for the options a class gets from one of Berth's mixins (else the mixin's name, split).
MIXIN_TITLES = {
    "ProcessLaunchMixin": "process kernels",
}


def _mixin_title(name: str) -> str:
    if name in MIXIN_TITLES:
        return MIXIN_TITLES[name]
    words = re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", name.removesuffix("Mixin"))
    return " ".join(words).lower() or name


@dataclass
class TraitDoc:
    name: str
    owner: str  #: the class that defines it
    type: str
    default: str
    help: str
    dynamic: bool = False
    foreign: bool = False  #: inherited from another project; Berth only changes its default


@dataclass
class ClassDoc:
    cls: type
    section: str
    traits: list[TraitDoc] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.cls.__name__


def berth_modules() -> tuple[list, list[str]]:
    """Import every module of the distribution; return (modules, errors)."""
    names: set[str] = set()
    errors: list[str] = []
    for pkg_name in PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except Exception as e:  # noqa: BLE001 - reported as a build warning
            errors.append(f"{pkg_name}: {type(e).__name__}: {e}")
            continue
        names.add(pkg_name)
        names.update(
            m.name
            for m in pkgutil.walk_packages(
                pkg.__path__, pkg_name + ".", onerror=lambda n: errors.append(f"{n}: cannot be walked")
            )
        )
    modules = []
    for name in sorted(names):
        if name.endswith("__main__") or ".migrations" in name:
            continue  # running them is their import; migrations hold no configuration
        try:
            modules.append(importlib.import_module(name))
        except Exception as e:  # noqa: BLE001 - reported as a build warning
            errors.append(f"{name}: {type(e).__name__}: {e}")
    return modules, errors


def _ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "jupyter_berth"


def _type_name(trait: TraitType) -> str:
    name = type(trait).__name__
    if isinstance(trait, Enum):
        name += " (" + ", ".join(repr(v) for v in trait.values) + ")"
    if trait.allow_none:
        name += " or None"
    return name


def _static_default(trait: TraitType) -> str:
    """The declared default, without the paths of the machine that builds the docs."""
    text = trait.default_value_repr()
    if sys.executable and repr(sys.executable) == text:
        return "the Python that runs it (``sys.executable``)"
    home = os.path.expanduser("~")
    if home not in ("", "/") and home in text:
        text = text.replace(home, "~")
    return literal(text)


def _dynamic_defaults(cls: type) -> set[str]:
    """Traits whose default this class (or a Berth mixin of it) computes with ``@default``.

    Berth classes that are configurables of their own are left out: they list their own.
    """
    names = set()
    for klass in cls.__mro__:
        if _ours(klass) and (klass is cls or not issubclass(klass, Configurable)):
            names.update(v.trait_name for v in vars(klass).values() if isinstance(v, DefaultHandler))
    return names


def _instance_default(cls: type, name: str) -> str | None:
    """The value a fresh instance computes for a changed foreign default, if it is a plain value."""
    try:
        value = getattr(cls(), name)
    except Exception:  # noqa: BLE001 - some defaults need a running hub; the help says what they are
        return None
    if callable(value):
        return None
    return repr(value)


def class_doc(cls: type, section: str) -> ClassDoc | None:
    traits = cls.class_traits(config=True)
    dynamic = _dynamic_defaults(cls)
    doc = ClassDoc(cls, section)
    for name, trait in sorted(traits.items()):
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None:
            continue
        if _ours(owner):
            # listed under the class that defines it, unless that class is a plain mixin (HasTraits)
            if owner is not cls and issubclass(owner, Configurable):
                continue
            default = "computed at start (see the help)" if name in dynamic else _static_default(trait)
            doc.traits.append(
                TraitDoc(name, owner.__name__, _type_name(trait), default, trait.help or "", dynamic=name in dynamic)
            )
        elif name in dynamic:
            value = _instance_default(cls, name)
            default = literal(value) if value is not None else "Berth's own (a function of jupyter_berth)"
            doc.traits.append(
                TraitDoc(name, owner.__name__, _type_name(trait), default, "", dynamic=True, foreign=True)
            )
    return doc if doc.traits else None


def collect() -> tuple[list[ClassDoc], list[str]]:
    modules, errors = berth_modules()
    classes: dict[type, None] = {}
    for module in modules:
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, Configurable) and _ours(obj):
                classes[obj] = None
    docs = []
    for cls in classes:
        section = next(
            prefix for prefix, _, _ in SECTIONS if cls.__module__ == prefix or cls.__module__.startswith(prefix + ".")
        )
        doc = class_doc(cls, section)
        if doc:
            docs.append(doc)
    docs.sort(
        key=lambda d: (
            SECTION_ORDER.index(d.section),
            CLASS_ORDER.index(d.name) if d.name in CLASS_ORDER else len(CLASS_ORDER),
            d.name,
        )
    )
    return docs, errors


def _first_paragraph(doc: str | None) -> str:
    doc = inspect.cleandoc(doc or "")
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def _about(cls: type) -> str:
    """The class's own docstring's first paragraph, else an Application's description."""
    doc = vars(cls).get("__doc__")
    if not doc:
        description = vars(cls).get("description")
        doc = description if isinstance(description, str) else ""
    return _first_paragraph(doc)


def _command(cls: type) -> str:
    """``berth …`` for a command-line Application, else ''."""
    name = vars(cls).get("name")
    is_cli = cls.__module__.startswith("jupyter_berth.cli.")
    return name if is_cli and isinstance(name, str) and name.startswith("berth ") else ""


def render_trait(cls_name: str, t: TraitDoc) -> list[str]:
    lines = [f".. confval:: {cls_name}.{t.name}", f"   :type: {escape(t.type)}", f"   :default: {t.default}", ""]
    if t.help:
        lines += paragraphs(t.help, indent="   ")
    else:
        lines += ["   *(no help text)*", ""]
    return lines


def render(docs: list[ClassDoc]) -> list[str]:
    lines: list[str] = []
    titles = {prefix: (title, intro) for prefix, title, intro in SECTIONS}
    section = None
    for doc in docs:
        if doc.section != section:
            section = doc.section
            title, intro = titles[section]
            lines += heading(title, "=") + [intro, ""]
        lines += [f".. _{class_label(doc.name)}:", ""]
        lines += heading(doc.name, "-")
        command = _command(doc.cls)
        about = escape(_about(doc.cls))
        where = f"``{doc.cls.__module__}.{doc.name}``" + (f", the command ``{command}``" if command else "")
        lines += [where + (" — " + about if about else ""), ""]
        groups: dict[str, list[TraitDoc]] = {}
        for t in doc.traits:
            if not t.foreign:
                groups.setdefault("" if t.owner == doc.name else t.owner, []).append(t)
        for owner, traits in sorted(groups.items(), key=lambda kv: (kv[0] != "", kv[0])):
            if owner:
                mixin = next(k for k in doc.cls.__mro__ if k.__name__ == owner)
                lines += heading(f"{doc.name}: {_mixin_title(owner)}", "~")
                about = _first_paragraph(mixin.__doc__)
                lines += [f"From ``{mixin.__module__}.{owner}``" + (": " + escape(about) if about else "."), ""]
            for t in traits:
                lines += render_trait(doc.name, t)
        if doc.name == "BerthService":
            lines += moved_settings()
        foreign = [t for t in doc.traits if t.foreign]
        if foreign:
            lines += [
                f"Options ``{doc.name}`` inherits and gives another default (their help is in the documentation "
                "of the class named):",
                "",
            ]
            lines += list_table(
                ["option", "Berth's default", "inherited from"],
                [[literal(f"{doc.name}.{t.name}"), t.default, literal(t.owner)] for t in foreign],
                widths=[35, 45, 20],
            )
    return lines


class BerthConfigurationDirective(SphinxDirective):
    """Insert the generated configuration reference (sections, one ``confval`` per trait)."""

    has_content = False
    option_spec = {"summary": directives.flag}

    def run(self):
        docs, errors = collect()
        for error in errors:
            logger.warning("berth-configuration: cannot import %s", error, location=self.get_location())
        for doc in docs:
            for t in doc.traits:
                if not t.help:
                    logger.info("berth-configuration: %s.%s has no help text", doc.name, t.name)
        if "summary" in self.options:
            return self.parse_text_to_nodes("\n".join(summary(docs)))
        return self.parse_text_to_nodes("\n".join(render(docs)), allow_section_headings=True)


def moved_settings() -> list[str]:
    """The table of ``c.BerthService.*`` names that moved to an area manager (still read, with a warning)."""
    from jupyter_berth.area import MOVED_IN, MOVED_SETTINGS

    lines = heading("BerthService: settings that moved", "~")
    lines += [
        f"These ``c.BerthService.…`` names moved to the service's area managers in jupyter-berth {MOVED_IN}. "
        "The old names still work until the next release, with a ``DeprecationWarning`` (and a log line) naming "
        "the new setting; where both are set, the new one wins.",
        "",
    ]
    rows = [
        [literal(f"c.BerthService.{old}"), f":ref:`c.{cls}.{new} <{class_label(cls)}>`", literal(f"service.{path}")]
        for old, (path, cls, new) in sorted(MOVED_SETTINGS.items())
    ]
    return lines + list_table(["old name", "set instead", "the manager"], rows, widths=[35, 40, 25])


def class_label(name: str) -> str:
    return "berth-config-" + name.lower()


def summary(docs: list[ClassDoc]) -> list[str]:
    """A table of the classes: where they are set, what they are, how many options (the page's top)."""
    titles = {prefix: title for prefix, title, _ in SECTIONS}
    rows = [
        [
            f":ref:`{doc.name} <{class_label(doc.name)}>`",
            escape(titles[doc.section]),
            (literal(_command(doc.cls)) + ": " if _command(doc.cls) else "") + escape(_about(doc.cls)),
            str(len([t for t in doc.traits if not t.foreign])),
        ]
        for doc in docs
    ]
    return list_table(["class", "part", "what it is", "options"], rows, widths=[22, 22, 46, 10])


def setup(app):
    app.add_directive("berth-configuration", BerthConfigurationDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

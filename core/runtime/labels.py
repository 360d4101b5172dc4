"""The labels every berth container and network carries.

Labels are how the engine tells the service what runs (design decision 2): on
start the service lists containers labelled ``managed=1``, reads who owns each,
which kernel or server it is and which ledger allocation pays for it, and
reconciles. Every key lives under :data:`PREFIX`; callers use the short names
(``owner``, ``kind``...) and these helpers add or strip the prefix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..errors import RequestError

#: Namespace of every label berth sets (reverse-DNS, as Docker recommends).
PREFIX = "io.jupyter.berth."

MANAGED = "managed"
OWNER = "owner"
KIND = "kind"
SUBJECT = "subject"
ALLOCATION = "allocation"
IMAGE_REF = "image_ref"

#: Value of the ``managed`` label on everything berth creates.
MANAGED_VALUE = "1"
#: What a container is for.
KINDS = ("kernel", "server", "pool", "job")

#: Environment variable naming labels added to everything berth creates (containers, networks,
#: volumes): ``BERTH_EXTRA_LABELS="cost_centre=physics,deployment=blue"`` (short names, under
#: :data:`PREFIX`). A test run sets one of its own so that it can remove exactly what it made.
EXTRA_LABELS_ENV = "BERTH_EXTRA_LABELS"

_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
#: Longest label value kept (Docker has no hard limit; this keeps inspect output sane).
MAX_VALUE_LENGTH = 1024


def key(name: str) -> str:
    """Full label key for a short name: ``"owner"`` → ``"io.jupyter.berth.owner"``.

    A key that already carries the prefix is returned unchanged.
    """
    if name.startswith(PREFIX):
        return name
    if not _KEY_RE.match(name):
        raise RequestError(
            "labels",
            f"{name!r} is not a valid label name; use lower-case letters, digits, '.', '_' or '-' (at most 63)",
        )
    return PREFIX + name


def sanitize_value(value: Any) -> str:
    """A label value as Docker stores it: a string, no control characters, bounded length.

    ``None`` becomes ``""``; numbers and booleans their ``str()``.
    """
    if value is None:
        return ""
    text = _CONTROL_RE.sub(" ", str(value))
    return text[:MAX_VALUE_LENGTH]


def make_labels(owner: str, kind: str, subject: str, allocation: Any = None, **extra: Any) -> dict[str, str]:
    """The labels of a berth container.

    ``owner`` is the user name, ``kind`` one of :data:`KINDS`, ``subject`` the
    kernel id or server name, ``allocation`` the ledger allocation id (may be
    ``None`` for a warm-pool container). ``extra`` adds more short-named labels
    (e.g. ``image_ref="berth/python:3.11"``); a value of ``None`` leaves it out.
    """
    if kind not in KINDS:
        raise RequestError("kind", f"{kind!r} is not a container kind; expected one of {', '.join(KINDS)}")
    if not owner:
        raise RequestError("owner", "a container must have an owner")
    labels = {
        **extra_labels(),
        key(MANAGED): MANAGED_VALUE,
        key(OWNER): sanitize_value(owner),
        key(KIND): kind,
        key(SUBJECT): sanitize_value(subject),
    }
    if allocation is not None:
        labels[key(ALLOCATION)] = sanitize_value(allocation)
    for name, value in extra.items():
        if value is not None:
            labels[key(name)] = sanitize_value(value)
    return labels


def full_labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    """Prefix short names, sanitise values; keys from other namespaces are refused.

    Used for filters and for specs built by hand: ``{"owner": "ann"}`` →
    ``{"io.jupyter.berth.owner": "ann"}``.
    """
    return {key(name): sanitize_value(value) for name, value in (labels or {}).items()}


def extra_labels() -> dict[str, str]:
    """The labels of :data:`EXTRA_LABELS_ENV` (``name=value`` pairs separated by commas), prefixed.

    A malformed pair is an error naming the variable, so a typo never silently drops a label.
    """
    text = os.environ.get(EXTRA_LABELS_ENV, "").strip()
    labels = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = pair.partition("=")
        if not sep:
            raise RequestError(EXTRA_LABELS_ENV, f"{pair!r} is not name=value (in ${EXTRA_LABELS_ENV}={text!r})")
        labels[key(name.strip())] = sanitize_value(value.strip())
    return labels


def creation_labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    """The labels of a network or volume berth creates: ``labels`` prefixed, marked managed, plus
    the :func:`extra_labels`."""
    return {**extra_labels(), **full_labels(labels), key(MANAGED): MANAGED_VALUE}


def parse_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The berth labels of a container by short name; other labels are dropped.

    ``{"io.jupyter.berth.owner": "ann", "maintainer": "x"}`` → ``{"owner": "ann"}``.
    """
    return {k[len(PREFIX) :]: v for k, v in (labels or {}).items() if k.startswith(PREFIX)}


def is_managed(labels: Mapping[str, str] | None) -> bool:
    """True when the labels mark something berth created."""
    return (labels or {}).get(key(MANAGED)) == MANAGED_VALUE

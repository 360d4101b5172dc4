"""A job's notebook on the way in: parameters typed and injected the way papermill does it.

Pure functions on notebook JSON (nbformat v4 as plain dicts), tested without an engine.
``-p name value`` on the command line and jupyter-scheduler's string parameters both pass
through :func:`typed_value` (``"3"`` → 3, ``"0.5"`` → 0.5, ``"True"`` → True, ``"None"`` → None,
anything else stays a string), and :func:`inject_parameters` adds one cell tagged
``injected-parameters`` right after the cell tagged ``parameters`` (or first, when there is
none; an earlier injected cell is replaced), so the notebook's defaults are overridden.
"""

from __future__ import annotations

import json
import keyword
import os
from typing import Any

from ..errors import RequestError

INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"


def typed_value(text: str) -> Any:
    """A command-line parameter value as papermill types it."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_parameters(parameters: dict) -> dict:
    """Names must be Python identifiers and values JSON-able (they travel to the service as JSON)."""
    if not isinstance(parameters, dict):
        raise RequestError("parameters", 'expected an object of names and values such as {"alpha": 0.5}')
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise RequestError("parameters", f"{name!r} is not a Python variable name; use letters, digits and _")
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise RequestError("parameters", f"the value of {name} is not a number, string, list or mapping") from None
    return parameters


def _tags(cell: dict) -> list:
    return list((cell.get("metadata") or {}).get("tags") or [])


def parameters_source(parameters: dict) -> str:
    lines = ["# Parameters (injected by Berth)"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items()]
    return "\n".join(lines) + "\n"


def inject_parameters(nb: dict, parameters: dict) -> dict:
    """``nb`` with an ``injected-parameters`` cell (a new dict; ``nb`` is not changed)."""
    nb = json.loads(json.dumps(nb))
    if not parameters:
        return nb
    cells = nb.setdefault("cells", [])
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": [INJECTED_TAG]},
        "outputs": [],
        "source": parameters_source(check_parameters(parameters)),
    }
    injected = [i for i, c in enumerate(cells) if INJECTED_TAG in _tags(c)]
    marked = [i for i, c in enumerate(cells) if PARAMETERS_TAG in _tags(c)]
    if injected:
        cells[injected[0]] = cell
    elif marked:
        cells.insert(marked[0] + 1, cell)
    else:
        cells.insert(0, cell)
    nb.setdefault("metadata", {}).setdefault("berth", {})["parameters"] = parameters
    return nb


def read_notebook(path: str) -> dict:
    """The notebook at ``path`` as JSON, refused with a clear message unless it is an nbformat 4 notebook."""
    try:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
    except FileNotFoundError:
        raise RequestError("notebook", f"{path} does not exist") from None
    except (OSError, ValueError) as e:
        raise RequestError("notebook", f"{path} is not a readable notebook ({e})") from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise RequestError("notebook", f"{path} is not an nbformat 4 notebook (save it with JupyterLab 3 or later)")
    return nb


def check_notebook(content, where: str = "content") -> dict:
    """A notebook sent as JSON (a job submitted over REST), refused unless it is an nbformat 4 notebook."""
    if not isinstance(content, dict) or content.get("nbformat") != 4 or not isinstance(content.get("cells"), list):
        raise RequestError(where, "expected the notebook itself: an nbformat 4 notebook as JSON, with its cells")
    if not all(isinstance(c, dict) for c in content["cells"]):
        raise RequestError(where, "every cell of the notebook must be an object")
    return content


def notebook_name(name) -> str:
    """A notebook's file name as the job list shows it (no folders; ``notebook.ipynb`` when none is given)."""
    base = os.path.basename(str(name or "").replace("\\", "/")).strip()
    return base[:255] or "notebook.ipynb"

"""``.. berth-ledger-schema::`` — every table of the ledger, generated from the SQLAlchemy models.

The tables are those of ``jupyter_berth.ledger.models.Base.metadata`` (the folders and images
models register there too), which is what the Alembic migrations build; a test compares the
migrated schema with these models. Each table gets its ORM class's docstring, its columns
(type, null, default, key), its constraints and its indexes.
"""

from __future__ import annotations

import inspect

from berth_docs_util import escape, heading, list_table, literal
from sphinx.util.docutils import SphinxDirective


def _models():
    from jupyter_berth.ledger import models, models_folders, models_images  # noqa: F401 - they register their tables

    return models


def _type(column) -> str:
    kind = type(column.type).__name__
    length = getattr(column.type, "length", None)
    return f"{kind}({length})" if length else kind


def _default(column) -> str:
    default = column.default
    if default is None:
        return ""
    arg = getattr(default, "arg", None)
    if callable(arg):
        return getattr(arg, "__name__", "computed") + "()"
    return repr(arg)


def render() -> list[str]:
    models = _models()
    metadata = models.Base.metadata
    classes = {m.local_table.name: m.class_ for m in models.Base.registry.mappers}
    lines: list[str] = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        lines += [f".. _ledger-table-{table.name.replace('_', '-')}:", ""]
        lines += heading(table.name, "-")
        cls = classes.get(table.name)
        doc = inspect.getdoc(cls) if cls is not None else ""
        if doc:
            lines += [escape(" ".join(doc.split("\n\n")[0].split())), ""]
        rows = []
        for column in table.columns:
            key = []
            if column.primary_key:
                key.append("primary key")
            key += ["→ " + literal(str(fk.column)) for fk in sorted(column.foreign_keys, key=str)]
            if column.unique:
                key.append("unique")
            rows.append(
                [
                    literal(column.name),
                    escape(_type(column)),
                    "yes" if column.nullable else "no",
                    literal(_default(column)) if _default(column) else "",
                    ", ".join(key),
                ]
            )
        lines += list_table(["column", "type", "null", "default", "key"], rows, widths=[24, 20, 8, 18, 30])
        extra = []
        for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
            kind = type(constraint).__name__
            if kind == "CheckConstraint":
                extra.append(f"check {literal(str(constraint.name))}: {literal(str(constraint.sqltext))}")
            elif kind == "UniqueConstraint":
                extra.append(
                    f"unique {literal(str(constraint.name))}: " + ", ".join(literal(c.name) for c in constraint.columns)
                )
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            extra.append(
                ("unique index " if index.unique else "index ")
                + literal(str(index.name))
                + ": "
                + ", ".join(literal(c.name) for c in index.columns)
            )
        lines += [f"- {e}" for e in extra] + ([""] if extra else [])
    return lines


class BerthLedgerSchemaDirective(SphinxDirective):
    has_content = False

    def run(self):
        return self.parse_text_to_nodes("\n".join(render()), allow_section_headings=True)


def setup(app):
    app.add_directive("berth-ledger-schema", BerthLedgerSchemaDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

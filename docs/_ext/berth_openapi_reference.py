"""``.. berth-openapi::`` — the REST API reference, generated from the server extension's OpenAPI document.

The document is the one the server serves at ``{base_url}berth/api/openapi.json``:
``jupyter_berth.server.handlers.meta.openapi_document()`` merges the parts in
``server_ext/openapi/*.json``. Nothing is fetched over the network. Each operation gets a
section (method and path, summary, parameters, request body, responses) and each schema of
``components.schemas`` one more; references between them are links, and a dangling
``$ref`` is a build warning.
"""

from __future__ import annotations

import re

from berth_docs_util import escape, heading, list_table, literal, paragraphs
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
#: Titles of the operation groups (OpenAPI tags); operations without a tag are the core ones.
TAG_TITLES = {
    "": "Server, presets, profile, policy, GPUs and kernels",
    "images": "Images and versions",
    "folders": "Folders",
    "usage": "Usage",
}


def load_document() -> dict:
    from jupyter_berth.server.handlers.meta import openapi_document

    return openapi_document("/")


def operation_label(method: str, path: str) -> str:
    return "berth-api-" + method.lower() + "-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def schema_label(name: str) -> str:
    return "berth-api-schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class Renderer:
    def __init__(self, doc: dict):
        self.doc = doc
        self.schemas = doc.get("components", {}).get("schemas", {})
        self.problems: list[str] = []

    # ---- schemas -------------------------------------------------------------------------------
    def ref(self, ref: str) -> str:
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/components/schemas/") or name not in self.schemas:
            self.problems.append(f"unresolved $ref {ref}")
            return literal(ref)
        return f":ref:`{name} <{schema_label(name)}>`"

    def type_of(self, schema: dict | None) -> str:
        if not schema:
            return "any"
        if "$ref" in schema:
            return self.ref(schema["$ref"])
        for combiner, word in (("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")):
            if combiner in schema:
                text = word.join(self.type_of(s) for s in schema[combiner])
                return text + (" or null" if schema.get("nullable") else "")
        kind = schema.get("type", "any")
        if isinstance(kind, list):
            kind = " or ".join(kind)
        if kind == "array":
            text = "array of " + self.type_of(schema.get("items"))
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict) and not schema.get("properties"):
            text = "object of " + self.type_of(schema["additionalProperties"])
        else:
            text = kind
        extras = []
        if "enum" in schema:
            extras.append("one of " + ", ".join(literal(_json(v)) for v in schema["enum"]))
        if "format" in schema:
            extras.append(escape(schema["format"]))
        if "default" in schema:
            extras.append("default " + literal(_json(schema["default"])))
        if extras:
            text += " (" + "; ".join(extras) + ")"
        if schema.get("nullable"):
            text += " or null"
        return text

    def properties(self, schema: dict, indent: str = "", depth: int = 0) -> list[str]:
        """Bullet list of an inline object's properties (nested objects one level deeper)."""
        if not schema or "$ref" in schema or depth > 4:
            return []
        if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
            return self.properties(schema["items"], indent, depth)
        parts = [schema] + [s for s in schema.get("allOf", []) if "$ref" not in s]
        props: dict = {}
        required: set = set()
        for part in parts:
            props.update(part.get("properties", {}))
            required.update(part.get("required", []))
        lines: list[str] = []
        for name, sub in props.items():
            bits = self.type_of(sub) + (", required" if name in required else "")
            text = f"{indent}- {literal(name)} ({bits})"
            if sub.get("description"):
                text += " — " + escape(" ".join(sub["description"].split()))
            lines += [text, ""]
            lines += self.properties(sub, indent + "  ", depth + 1)
        if lines and schema.get("additionalProperties") is False:
            lines += [f"{indent}- no other fields are accepted", ""]
        return lines

    # ---- operations ----------------------------------------------------------------------------
    def operations(self) -> dict[str, list[tuple[str, str, dict, list]]]:
        groups: dict[str, list] = {}
        for path, item in self.doc.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method in METHODS:
                if method in item:
                    op = item[method]
                    tag = (op.get("tags") or [""])[0]
                    groups.setdefault(tag, []).append((method, path, op, shared))
        return dict(sorted(groups.items(), key=lambda kv: (kv[0] != "", kv[0])))

    def parameter(self, p: dict) -> dict:
        return self.resolve(p) if "$ref" in p else p

    def resolve(self, obj: dict) -> dict:
        target = self.doc
        for key in obj["$ref"].lstrip("#/").split("/"):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        if not target:
            self.problems.append(f"unresolved $ref {obj['$ref']}")
        return target

    def operation(self, method: str, path: str, op: dict, shared: list) -> list[str]:
        lines = [f".. _{operation_label(method, path)}:", ""]
        lines += heading(f"{method.upper()} {path}", "-")
        if op.get("summary"):
            lines += paragraphs(op["summary"])
        if op.get("description"):
            lines += paragraphs(op["description"])
        params = {}
        for p in [self.parameter(p) for p in shared] + [self.parameter(p) for p in op.get("parameters", [])]:
            params[(p.get("in"), p.get("name"))] = p  # an operation's own parameter overrides the path's
        if params:
            rows = []
            for p in params.values():
                schema = p.get("schema", {})
                extra = []
                if "pattern" in schema:
                    extra.append("pattern " + literal(schema["pattern"]))
                if "minLength" in schema or "maxLength" in schema:
                    extra.append(f"{schema.get('minLength', 0)}–{schema.get('maxLength', '…')} characters")
                description = escape(" ".join(p.get("description", "").split()))
                if extra:
                    description = (description + " " if description else "") + "(" + "; ".join(extra) + ")"
                rows.append(
                    [
                        literal(p.get("name", "")),
                        escape(p.get("in", "")),
                        self.type_of(schema),
                        "yes" if p.get("required") else "no",
                        description,
                    ]
                )
            lines += ["**Parameters**", ""]
            lines += list_table(["name", "in", "type", "required", "description"], rows, widths=[15, 8, 22, 8, 47])
        body = op.get("requestBody")
        if body:
            body = self.resolve(body) if "$ref" in body else body
            for media, content in body.get("content", {}).items():
                schema = content.get("schema", {})
                required = "required" if body.get("required") else "optional"
                lines += [f"**Request body** ({escape(media)}, {required}): {self.type_of(schema)}", ""]
                if body.get("description"):
                    lines += paragraphs(body["description"])
                lines += self.properties(self.schema_of(schema))
        responses = op.get("responses", {})
        if responses:
            rows = []
            for status, response in responses.items():
                response = self.resolve(response) if "$ref" in response else response
                kinds = [
                    f"{escape(m)}: {self.type_of(c.get('schema'))}" for m, c in (response.get("content") or {}).items()
                ]
                rows.append([literal(status), escape(response.get("description", "")), "; ".join(kinds) or "no body"])
            lines += ["**Responses**", ""]
            lines += list_table(["status", "description", "body"], rows, widths=[10, 40, 50])
            for status, response in responses.items():
                response = self.resolve(response) if "$ref" in response else response
                for media, content in (response.get("content") or {}).items():
                    schema = content.get("schema") or {}
                    if str(status).startswith("2") and "$ref" not in schema and self.properties(schema):
                        lines += [f"``{status}`` {escape(media)} body:", ""] + self.properties(schema)
        return lines

    def schema_of(self, schema: dict) -> dict:
        """A request body's schema with one ``$ref`` followed, so that its fields are listed in place."""
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            return self.schemas.get(name, {})
        return schema

    # ---- the page ------------------------------------------------------------------------------
    def render(self) -> list[str]:
        lines: list[str] = []
        for tag, ops in self.operations().items():
            title = TAG_TITLES.get(tag, tag.capitalize())
            lines += heading(title, "=")
            for method, path, op, shared in ops:
                lines += self.operation(method, path, op, shared)
        lines += heading("Schemas", "=")
        lines += [
            "The objects that the operations above take and return (``components.schemas`` of the OpenAPI document).",
            "",
        ]
        for name, schema in sorted(self.schemas.items()):
            lines += [f".. _{schema_label(name)}:", ""]
            lines += heading(name, "-")
            if schema.get("description"):
                lines += paragraphs(schema["description"])
            lines += [f"Type: {self.type_of({k: v for k, v in schema.items() if k != 'description'})}", ""]
            lines += self.properties(schema)
        return lines

    def summary(self) -> list[str]:
        info = self.doc.get("info", {})
        lines = [
            f"OpenAPI {escape(self.doc.get('openapi', ''))}, *{escape(info.get('title', ''))}*, "
            f"version {escape(info.get('version', ''))}. " + escape(info.get("description", "")),
            "",
        ]
        rows = []
        for ops in self.operations().values():
            for method, path, op, _ in ops:
                rows.append(
                    [
                        f":ref:`{method.upper()} {escape(path)} <{operation_label(method, path)}>`",
                        escape(op.get("summary", "")),
                    ]
                )
        return lines + list_table(["operation", "what"], rows, widths=[45, 55])


class BerthOpenAPIDirective(SphinxDirective):
    """Insert the REST API reference: ``:summary:`` for the table of operations, else every section."""

    has_content = False
    option_spec = {"summary": lambda arg: True}

    def run(self):
        renderer = Renderer(load_document())
        if "summary" in self.options:
            text = renderer.summary()
            return self.parse_text_to_nodes("\n".join(text))
        text = renderer.render()
        for problem in sorted(set(renderer.problems)):
            logger.warning("berth-openapi: %s", problem, location=self.get_location())
        return self.parse_text_to_nodes("\n".join(text), allow_section_headings=True)


def _json(value) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def setup(app):
    app.add_directive("berth-openapi", BerthOpenAPIDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

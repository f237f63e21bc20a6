"""``/api/docs``: the API's reference as one page, made from its OpenAPI document.

Swagger UI and ReDoc load their scripts from a CDN, which an offline or locked-down setup
cannot reach; this page is plain HTML rendered on the server (no scripts at all), so it
works anywhere the API does. It lists every operation with its parameters (where, type,
default, limits, description) and its answers.
"""

from __future__ import annotations

import html
from typing import Any

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 64rem;
  color: #1f2937; padding: 0 1rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #e5e7eb; }
h3 { font: 600 15px ui-monospace, monospace; margin: 1.6rem 0 .3rem; }
.method { background: #dbeafe; border-radius: .3rem; padding: .05rem .4rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #f3f4f6;
  vertical-align: top; }
code { font: 13px ui-monospace, monospace; }
nav a { margin-right: .8rem; }
"""


def _type(schema: dict[str, Any], components: dict[str, Any]) -> str:
    """A short type text for a parameter's schema."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        kinds = [_type(s, components) for s in schema["anyOf"]]
        return " or ".join(k for k in kinds if k != "null") + (
            " (optional)" if "null" in kinds else ""
        )
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"list of {_type(schema.get('items', {}), components)}"
    if "format" in schema:
        kind += f" ({schema['format']})"
    if "pattern" in schema:
        kind += f" matching {schema['pattern']}"
    return kind


def _limits(schema: dict[str, Any]) -> str:
    parts = []
    for key, word in (("minimum", ">="), ("maximum", "<="), ("exclusiveMinimum", ">")):
        if key in schema:
            parts.append(f"{word} {schema[key]}")
    for inner in schema.get("anyOf", []):
        parts.extend(p for p in [_limits(inner)] if p)
    return ", ".join(parts)


def render(document: dict[str, Any]) -> str:
    """The page for an OpenAPI document."""
    e = html.escape
    components = document.get("components", {}).get("schemas", {})
    info = document.get("info", {})
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(info.get('title', 'API'))} - reference</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{e(info.get('title', 'API'))} <small>{e(str(info.get('version', '')))}</small></h1>",
        f"<p>{e(info.get('description', ''))}</p>",
        "<p>The machine-readable contract: <a href='openapi.json'>openapi.json</a>.</p>",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), path, operation))
    out.append("<nav>" + "".join(f"<a href='#{e(t)}'>{e(t)}</a>" for t in by_tag) + "</nav>")
    for tag, operations in by_tag.items():
        out.append(f"<h2 id='{e(tag)}'>{e(tag)}</h2>")
        for method, path, operation in operations:
            out.append(f"<h3><span class='method'>{e(method)}</span> {e(path)}</h3>")
            text = operation.get("description") or operation.get("summary") or ""
            out.extend(f"<p>{e(p)}</p>" for p in text.split("\n\n") if p.strip())
            parameters = operation.get("parameters", [])
            if parameters:
                out.append(
                    "<table><tr><th>parameter</th><th>in</th><th>type</th>"
                    "<th>default</th><th>limits</th><th>what</th></tr>"
                )
                for p in parameters:
                    schema = p.get("schema", {})
                    default = schema.get("default", "" if p.get("required") else "-")
                    name = p["name"] + (" (required)" if p.get("required") else "")
                    out.append(
                        f"<tr><td><code>{e(name)}</code></td><td>{e(p.get('in', ''))}</td>"
                        f"<td>{e(_type(schema, components))}</td><td>{e(str(default))}</td>"
                        f"<td>{e(_limits(schema))}</td>"
                        f"<td>{e(p.get('description') or schema.get('description') or '')}</td>"
                        "</tr>"
                    )
                out.append("</table>")
            answers = operation.get("responses", {})
            out.append(
                "<p>Answers: "
                + ", ".join(
                    f"<code>{e(code)}</code> {e(r.get('description', ''))}"
                    for code, r in answers.items()
                )
                + "</p>"
            )
    out.append("</body></html>")
    return "\n".join(out)

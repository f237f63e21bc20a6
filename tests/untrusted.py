"""Hostile values and the checks that they stay text (shared by the escaping tests).

``scan_markup`` reads an HTML document or fragment statically; ``Page`` opens one in real
headless Chromium with the network refused, records every dialog (``alert``, ``confirm``,
``prompt``), hovers the charts so their tooltips are drawn, and reports elements or
attributes that only injected markup would create.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

PAYLOADS = (
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "`**bold**`<b>x</b>`",
    "[link](javascript:alert(3))",
    "$x$ and $y$",
    '"onmouseover=alert(4) x="',
    "<iframe src=../../../.env>",
    "{{7*7}}",
    "<svg onload=alert(5)>",
    "a'b\"c\\",  # quotes and a trailing backslash: Vega field names, titles, expressions
    "line\u2028sep\nnext # heading",  # line breaks: Markdown blocks, Vega expressions
)
"""One per value of a column (cycled): HTML, JS, Markdown, math, template and Vega text."""

_FETCHING = {"img", "iframe", "frame", "object", "embed", "base", "form", "audio", "video"}
_SCRIPT_SCHEMES = ("javascript:", "vbscript:", "file:")
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc"}


def payload(index: int) -> str:
    """The ``index``-th hostile value (cycled, numbered after one round so values differ)."""
    text = PAYLOADS[index % len(PAYLOADS)]
    return text if index < len(PAYLOADS) else f"{text} {index}"


class _Scanner(HTMLParser):
    """Collects what only injected markup would add to a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        src = (values.get("src") or "").strip()
        if tag in _FETCHING and not (tag == "img" and src.startswith(("cid:", "data:image/"))):
            self.problems.append(f"<{tag} {attrs}>")
        if tag == "meta" and "http-equiv" in values:
            self.problems.append(f"<meta {attrs}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag}> with handler {name}={value!r}")
            lowered = (value or "").strip().lower()
            if name in _URL_ATTRIBUTES and lowered.startswith(_SCRIPT_SCHEMES):
                self.problems.append(f"<{tag}> with {name}={value!r}")
        if tag == "script":
            self._script = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "script":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)


def scan_markup(markup: str) -> list[str]:
    """Problems in an HTML page or fragment: elements that fetch (images other than
    ``cid:``/``data:``, frames, objects, forms), event-handler attributes, script URLs,
    refresh headers, and any hostile value written raw inside a ``<script>``."""
    scanner = _Scanner()
    scanner.feed(markup)
    scanner.close()
    problems = list(scanner.problems)
    for script in scanner.scripts:
        for text in PAYLOADS:
            if "<" in text and text in script:
                problems.append(f"raw {text!r} inside a <script>")
    return problems


def shown(markup: str) -> str:
    """The text of HTML without its tags and scripts (entities decoded)."""
    import html

    body = re.sub(r"<script\b.*?</script>", " ", markup, flags=re.S | re.I)
    body = re.sub(r"<style\b.*?</style>", " ", body, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


_DOM_CHECK = """() => {
  const bad = [];
  for (const e of document.querySelectorAll('*')) {
    for (const a of e.attributes) {
      if (a.name.startsWith('on')) bad.push(e.tagName + ' ' + a.name + '=' + a.value);
    }
  }
  const fetching = 'iframe, frame, object, embed, base, form:not(.vega-bindings)';
  for (const e of document.querySelectorAll(fetching)) {
    bad.push(e.outerHTML.slice(0, 120));
  }
  for (const e of document.querySelectorAll('img')) {
    const src = e.getAttribute('src') || '';
    if (!src.startsWith('cid:') && !src.startsWith('data:image/')) bad.push(e.outerHTML);
  }
  return bad;
}"""

_TOOLTIP = """() => {
  const t = document.getElementById('vg-tooltip-element');
  if (!t || !t.classList.contains('visible')) return null;
  return {html: t.innerHTML, text: t.textContent,
          elements: [...t.querySelectorAll('img, script, iframe, svg, a')].map(e => e.tagName)};
}"""


@dataclass
class Visit:
    """What happened when a page was opened: dialogs, injected elements, text, tooltips."""

    dialogs: list[str] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    text: str = ""
    tooltips: list[str] = field(default_factory=list)
    tooltip_elements: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    charts: int = 0


def visit(browser: Any, url: str, *, hover: bool = True, grid: tuple[int, int] = (7, 3)) -> Visit:
    """Open ``url`` (``file:``) in a fresh context with every other request refused; wait for
    the charts, hover each chart on a grid of points, and report what happened."""
    seen = Visit()
    context = browser.new_context(viewport={"width": 1200, "height": 900})

    def route(r: Any) -> None:
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            seen.refused.append(r.request.url)
            r.abort()

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    context.route("**/*", route)
    page = context.new_page()
    page.on("dialog", on_dialog)
    try:
        page.goto(url, wait_until="load")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.vega-embed')]"
            ".every(e => e.querySelector('svg, canvas'))",
            timeout=60_000,
        )
        seen.charts = page.evaluate("document.querySelectorAll('.vega-embed svg.marks').length")
        if hover:
            marks = page.locator(".vega-embed svg.marks")
            for i in range(seen.charts):
                marks.nth(i).scroll_into_view_if_needed()  # the mouse only reaches the viewport
                box = marks.nth(i).bounding_box()
                if not box:
                    continue
                columns, rows = grid
                for row in range(rows):
                    for column in range(columns):
                        x = box["x"] + box["width"] * (column + 0.5) / columns
                        y = box["y"] + box["height"] * (row + 0.5) / rows
                        page.mouse.move(x, y)
                        tip = page.evaluate(_TOOLTIP)
                        if tip and tip["text"]:
                            seen.tooltips.append(tip["text"])
                            seen.tooltip_elements.extend(tip["elements"])
        page.wait_for_timeout(300)  # anything that would fire late (onerror of a lazy image)
        seen.injected = page.evaluate(_DOM_CHECK)
        seen.text = page.evaluate("document.body.innerText")
    finally:
        context.close()
    return seen

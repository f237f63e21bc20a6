"""Escaping of data and parameter values for every format they land in.

Warehouse values (customer names, segments, regions, channels, model ids, features,
providers ...) and report parameters are text written by someone else. Wherever the
product puts such a value into a format that has markup, it goes through one of these
helpers, so the value shows as the same text and never becomes markup or code:

* **HTML** (report tiles and tables, emails, dashboards, the report index):
  :func:`html_text` for element content, :func:`html_attr` for quoted attribute values.
* **Markdown** (``IPython.display.Markdown`` in notebooks, rendered to HTML by JupyterLab
  and by nbconvert in reports): :func:`md_text` makes every character literal (no
  emphasis, links, headings, tables, raw HTML or ``$`` math), :func:`md_code` shows a
  value as code. A Markdown code span is not used for data: a backtick in the value
  would end it and the rest would be Markdown again.
* **Vega-Lite** (charts): Vega renders titles, axis and legend labels and text marks as
  text, and vega-tooltip escapes what it puts into the tooltip (``&`` and ``<``), so
  HTML in a value stays text. But Vega-Lite compiles encoding titles into Vega
  *expressions* (the tooltip signal and the ARIA description) escaping only ``"``: a
  title ending in a backslash ends the string literal early, and a line break or
  U+2028 makes the whole chart fail to parse; the same two characters break a custom
  sort order, which is compiled into an expression too. :func:`vega_text` makes a
  value safe for those places, :func:`vega_field` for a field name (``datum[...]``
  access paths treat ``.``, ``[``, ``]``, quotes and backslashes as syntax). Charts
  never build expressions from data values: values travel as data.
* **Sanitising**: :func:`clean_html` is the allow-list sanitiser that reports run over
  every Markdown output and Markdown cell (nbconvert's ``sanitize_html``), a second
  line of defence behind :func:`md_text`.
* **Other formats**: :func:`one_line` for email headers, :func:`csv_safe` for CSV files
  that a spreadsheet opens (a cell starting with ``=``, ``+``, ``-`` or ``@`` would be a
  formula).

HTML built from these helpers is trusted by the report renderer (it carries the charts'
scripts, so it cannot be sanitised); values must never reach it any other way.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Every ASCII punctuation character that Markdown, GFM tables and autolinks, Jupyter's
# math (``$``) or raw HTML give a meaning to, anywhere in a line.
_MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#+-.!|$&~^:@=")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_BACKSLASH_LOOKALIKE = "\u2216"  # SET MINUS: looks like "\" and is no escape character

_CLEAN_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s",
        "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
        "thead", "tr", "ul",
    }
)  # fmt: skip
_CLEAN_ATTRIBUTES = {
    "*": ["class", "id", "title"],
    "a": ["class", "id", "title", "href"],
    "ol": ["class", "id", "start"],
    "td": ["class", "id", "colspan", "rowspan", "align"],
    "th": ["class", "id", "colspan", "rowspan", "align"],
}
_CLEAN_PROTOCOLS = frozenset({"http", "https", "mailto"})


def _text(value: Any) -> str:
    """``str(value)``, with None as ""."""
    return "" if value is None else str(value)


def html_text(value: Any) -> str:
    """A value as HTML element content: ``&``, ``<``, ``>`` and both quotes escaped.

    Parameters
    ----------
    value : any
        The value (``str()`` of it; None is "").

    Returns
    -------
    str
        Text that shows as the value and can never open a tag or an entity.
    """
    return html.escape(_text(value), quote=True)


def html_attr(value: Any) -> str:
    """A value for a quoted HTML attribute (``title="..."``, ``data-x='...'``).

    Parameters
    ----------
    value : any
        The value (``str()`` of it; None is "").

    Returns
    -------
    str
        The value with ``&``, ``<``, ``>``, ``"`` and ``'`` escaped and line breaks and
        other control characters as spaces. Only for quoted attributes, and never for
        URLs, event handlers or ``style`` (no escaping makes a value safe there).
    """
    return html.escape(_CONTROL.sub(" ", _text(value)), quote=True)


def md_text(value: Any) -> str:
    """A value as literal text inside Markdown (a sentence, a bold part, a heading).

    Parameters
    ----------
    value : any
        The value (``str()`` of it; None is "").

    Returns
    -------
    str
        The value with every Markdown-special ASCII punctuation character written as a
        numeric character reference (``<`` as ``&#60;``, ``*`` as ``&#42;``, ``$`` as
        ``&#36;`` ...), and line breaks and other control characters as spaces, so it
        cannot start a block (heading, list, HTML block) or end the one it is in. Every
        CommonMark renderer (JupyterLab, nbconvert's mistune) shows it as the value.
    """
    text = _CONTROL.sub(" ", _text(value))
    return "".join(f"&#{ord(c)};" if c in _MARKDOWN_SPECIAL else c for c in text)


def md_code(value: Any) -> str:
    """A value shown as code inside Markdown (model ids, feature names).

    Parameters
    ----------
    value : any
        The value (``str()`` of it; None is "").

    Returns
    -------
    str
        ``<code>`` + :func:`md_text` of the value + ``</code>``: renderers pass the
        ``<code>`` element through and show its content as text, whatever backticks
        the value holds (a Markdown code span would end at the first one).
    """
    return f"<code>{md_text(value)}</code>"


def vega_text(value: Any) -> str:
    """A value for a Vega-Lite title, tooltip title or category that may sit in a sort order.

    Parameters
    ----------
    value : any
        The value (``str()`` of it; None is "").

    Returns
    -------
    str
        The value with line breaks, U+2028/U+2029 and other control characters as
        spaces and each backslash as U+2216 (which looks the same): Vega-Lite writes
        encoding titles into Vega expression strings escaping only ``"``, and a
        backslash there would escape the closing quote. Markup needs no escaping:
        Vega draws text as text and its tooltip escapes HTML.
    """
    return _CONTROL.sub(" ", _text(value)).replace("\\", _BACKSLASH_LOOKALIKE)


def vega_field(name: Any) -> str:
    """A column name as a Vega-Lite ``field`` (a flat name, never a nested path).

    Parameters
    ----------
    name : any
        The column name.

    Returns
    -------
    str
        The name with ``.``, ``[``, ``]``, ``'``, ``"`` and ``\\`` escaped by a
        backslash, as Vega's access-path parser expects (an unescaped quote makes it
        fail with "Access path missing closing quote").
    """
    return re.sub(r"([.\[\]'\"\\])", r"\\\1", _text(name))


def one_line(value: Any) -> str:
    """A value for a one-line context such as an email header: control characters as spaces.

    Parameters
    ----------
    value : any
        The value (``str()`` of it; None is "").

    Returns
    -------
    str
        The value on one line (a line break in a header would start another header).
    """
    return _CONTROL.sub(" ", _text(value)).strip()


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a table whose text cells cannot run as spreadsheet formulas.

    Parameters
    ----------
    frame : pandas.DataFrame
        A table about to be written as CSV (exports, email attachments).

    Returns
    -------
    pandas.DataFrame
        The same table; text cells (and column names) starting with ``=``, ``+``, ``-``,
        ``@``, a tab or a carriage return get a leading ``'``, as OWASP recommends, so
        Excel, LibreOffice and Google Sheets show them as text. Numbers are unchanged.
    """
    import pandas as pd

    def cell(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(_FORMULA_START):
            return "'" + value
        return value

    out = frame.copy()
    out.columns = [cell(c) for c in out.columns]
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(cell)
    return out


def clean_html(markup: Any) -> str:
    """Sanitise HTML rendered from Markdown: only text-formatting elements survive.

    Used as nbconvert's ``clean_html`` filter for reports (their Markdown outputs and
    Markdown cells); nbconvert's own allow-list lacks paragraphs and headings and would
    show them as escaped tags.

    Parameters
    ----------
    markup : str or bytes
        HTML.

    Returns
    -------
    str
        The HTML with paragraphs, headings, lists, tables, emphasis, code and links
        (http, https, mailto or relative) kept; every other element removed (its text
        stays, escaped), and every attribute except ``class``, ``id``, ``title``,
        ``href`` and table spans removed: no script, style, event handler, image, frame,
        form or ``javascript:`` URL remains.
    """
    import bleach

    text = markup.decode() if isinstance(markup, bytes) else _text(markup)
    return bleach.clean(
        text,
        tags=_CLEAN_TAGS,
        attributes=_CLEAN_ATTRIBUTES,
        protocols=_CLEAN_PROTOCOLS,
        strip=True,
        strip_comments=True,
    )


__all__ = [
    "clean_html",
    "csv_safe",
    "html_attr",
    "html_text",
    "md_code",
    "md_text",
    "one_line",
    "vega_field",
    "vega_text",
]

"""Exports of a dashboard's current view: CSV, JSON and PNG downloads as ``data:`` links.

The links are plain ``<a download>`` elements whose ``href`` carries the file itself, so a
download needs no extra route on the server and no kernel round trip.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pandas as pd

from auterity import _json
from auterity.escape import csv_safe, html_attr, html_text


def view_json(frames: Mapping[str, pd.DataFrame], filters: Mapping[str, Any]) -> str:
    """The current view as JSON: the filters and every dataset as a list of records.

    Parameters
    ----------
    frames : mapping of str to DataFrame
        The view's datasets.
    filters : mapping
        The filter values that produced them.

    Returns
    -------
    str
        ``{"filters": {...}, "data": {name: [records]}}``.
    """
    payload = {
        "filters": _json.json_value(dict(filters)),
        "data": {name: _json.records(frame) for name, frame in frames.items()},
    }
    return _json.dumps(payload, indent=1)


def _data_uri(content: bytes, mime: str) -> str:
    """A base64 ``data:`` URI."""
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def export_links_html(
    name: str,
    csv_frame: pd.DataFrame,
    frames: Mapping[str, pd.DataFrame],
    filters: Mapping[str, Any],
    pngs: Mapping[str, bytes] | None = None,
) -> str:
    """Download links (styled as buttons) for the current view.

    Parameters
    ----------
    name : str
        File name stem, e.g. ``business``.
    csv_frame : DataFrame
        The view's headline table, exported as CSV.
    frames : mapping
        Every dataset of the view, exported together as JSON.
    filters : mapping
        The filters of the view (in the JSON).
    pngs : mapping of str to bytes, optional
        Chart images to offer as PNG downloads.

    Returns
    -------
    str
        HTML with ``<a download>`` links carrying ``data-export`` attributes. The CSV's
        text cells cannot run as spreadsheet formulas (:func:`auterity.escape.csv_safe`).
    """
    csv_bytes = csv_safe(csv_frame).to_csv(index=False).encode("utf-8")
    json_bytes = view_json(frames, filters).encode("utf-8")
    stem = html_attr(name)
    links = [
        f'<a class="au-export-csv" data-export="csv" download="{stem}.csv" '
        f'href="{_data_uri(csv_bytes, "text/csv")}">⬇ CSV</a>',
        f'<a class="au-export-json" data-export="json" download="{stem}.json" '
        f'href="{_data_uri(json_bytes, "application/json")}">⬇ JSON</a>',
    ]
    for chart_name, png in (pngs or {}).items():
        safe = html_attr(chart_name)
        links.append(
            f'<a class="au-export-png" data-export="png" data-chart="{safe}" '
            f'download="{stem}-{safe}.png" href="{_data_uri(png, "image/png")}">'
            f"⬇ {html_text(chart_name)}.png</a>"
        )
    return f'<div class="au-exports">{"".join(links)}</div>'

"""Deterministic, realistic synthetic data for every system the platform analyses.

The same seed and end date give the same rows, whatever the database. What is generated:

* **Business**: visits with weekly and yearly seasonality, a growth trend and holiday dips;
  a visit -> signup -> activation -> purchase funnel; customers with country/region,
  segment and plan; orders whose signup cohorts churn with realistic, flattening decay.
* **ModelHub**: models from several providers (per-token, tiered and flat-rate
  self-hosted pricing) called by product features, with distinct latency, token, cost,
  error, timeout and quality profiles; traffic follows the active customer base.
* **Planted effects** (unless ``effects=False``), listed in the manifest so tests and the
  insight engine can check that the analytics find them: latency degradations of one
  model followed one day later by conversion dips, a cost spike, an input-token drift,
  point anomalies and a level shift in business metrics, and a savings opportunity.

Random streams are independent per table and per month (``SeedSequence([seed, stream])``),
so chunked generation is deterministic and planting effects does not reshuffle the rest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import URL

from auterity import __version__, warehouse
from auterity.demo.business import simulate_business
from auterity.demo.catalogue import FEATURES, MODELS
from auterity.demo.modelhub import events_per_day, inference_chunk, models_frame
from auterity.demo.world import DemoConfig, build_calendar, plan_effects


@dataclass
class DemoWorld:
    """A generated demo world: what to write, and the manifest describing it."""

    config: DemoConfig
    manifest: dict[str, Any]
    expected_rows: dict[str, int]
    _chunks: Iterator[tuple[str, pd.DataFrame]]

    def chunks(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """Yield ``(table, DataFrame)`` chunks in load order (inference events by month)."""
        return self._chunks


def generate(cfg: DemoConfig) -> DemoWorld:
    """Generate a demo world.

    Business tables are built up front (they are small); inference events are produced
    month by month when :meth:`DemoWorld.chunks` is iterated, so memory stays bounded
    even for tens of millions of events.

    Parameters
    ----------
    cfg : DemoConfig
        Seed, size, range and whether to plant effects.

    Returns
    -------
    DemoWorld
        Manifest, expected row counts and the chunk iterator.
    """
    cal = build_calendar(cfg)
    fx = plan_effects(cfg, cal)
    biz = simulate_business(cfg, cal, fx)
    day_counts = events_per_day(cfg, cal, biz)
    months = pd.DatetimeIndex(cal.days).to_period("M").asi8
    month_groups = [np.flatnonzero(months == m) for m in np.unique(months)]

    expected = {
        "models": len(MODELS),
        "customers": len(biz.customers),
        "product_events": len(biz.product_events),
        "orders": len(biz.orders),
        "inference_events": int(day_counts.sum()),
    }
    manifest = {
        "generator": f"auterity {__version__}",
        "seed": cfg.seed,
        "events": cfg.events,
        "months": cfg.months,
        "start": str(cfg.start),
        "end": str(cfg.end),
        "effects_planted": cfg.effects,
        "timezone_of_timestamps": "UTC",
        "rows": expected,
        "models": [m.model_id for m in MODELS],
        "features": list(FEATURES),
        "effects": fx.manifest,
    }

    def chunks() -> Iterator[tuple[str, pd.DataFrame]]:
        yield "models", models_frame()
        yield "customers", biz.customers
        step = 500_000
        for start in range(0, len(biz.product_events), step):
            yield "product_events", biz.product_events.iloc[start : start + step]
        yield "orders", biz.orders
        next_id = 0
        for chunk_no, days in enumerate(month_groups):
            frame = inference_chunk(cfg, cal, fx, biz, day_counts, days, chunk_no, next_id)
            next_id += len(frame)
            yield "inference_events", frame

    return DemoWorld(cfg, manifest, expected, chunks())


def build(
    world: DemoWorld | DemoConfig,
    *,
    url: str | URL | None = None,
    progress: Any = None,
    manifest_path: Path | None = None,
) -> dict[str, Any]:
    """Replace the warehouse's data with a generated demo world.

    Parameters
    ----------
    world : DemoWorld or DemoConfig
        A world from :func:`generate`, or the config to generate one from.
    url : str or URL, optional
        Warehouse URL; default from the settings.
    progress : callable, optional
        ``progress(table, rows)`` after each written chunk.
    manifest_path : Path, optional
        Also write the manifest there as JSON (it is always stored in the warehouse).

    Returns
    -------
    dict
        The manifest, including the rows written per table and the new data version.
    """

    if isinstance(world, DemoConfig):
        world = generate(world)
    cfg = world.config
    result = warehouse.replace_data(
        world.chunks(),
        url=url,
        meta={"demo_manifest": json.dumps(world.manifest)},
        action="demo_data.build",
        details={"seed": cfg.seed, "events": cfg.events, "effects": cfg.effects},
        progress=progress,
    )
    manifest = {**world.manifest, "rows": result.rows, "data_version": result.data_version}
    if manifest_path is not None:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def load_manifest(url: str | None = None) -> dict[str, Any] | None:
    """The manifest of the demo data currently in the warehouse, if it holds demo data."""

    text = warehouse.get_meta("demo_manifest", url)
    return json.loads(text) if text else None


__all__ = [
    "FEATURES",
    "MODELS",
    "DemoConfig",
    "DemoWorld",
    "build",
    "generate",
    "load_manifest",
    "models_frame",
]

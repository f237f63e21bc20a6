"""Recall of planted effects and false findings on effect-free data, over many demo seeds.

Usage::

    python benchmarks/bench_insights.py WORKDIR [--seeds 20] [--first-seed 1]
        [--seed-list 6,7,12] [--events 600000] [--months 9] [--burn-in 45]
        [--processes 1] [--out benchmarks/results/insights.json]

``--seed-list`` runs the seeds named instead of ``--seeds`` from ``--first-seed`` (to
iterate on the failing seeds; the goals are judged on the full 20).

For each seed, two demo worlds are built in ``WORKDIR`` (DuckDB files, deleted afterwards):
one with the planted effects and the same world without them (``effects=False``).
:func:`auterity.insights.run` looks at ``[start + burn-in, end)`` of each (the first weeks
of a demo world are its start-up: customers and traffic ramp up from zero).

Matching rule (a planted effect is *found* when a card matches it)
------------------------------------------------------------------
Recall units are the manifest's effects, one per window or date:

* ``conversion_dip`` (caused by the gpt-4o slowdowns, one unit): a ``correlation`` card
  for ``gpt-4o:p95_latency_ms`` and ``conversion_rate`` with a negative r whose best lag
  is within one day of the manifest's ``lag_days`` (the slowdown and the dip overlap on
  four of their five days at lag 0, so lags 0 and 1 are both what the data say; the
  share found at exactly the manifest's lag is reported too);
* ``latency_degradation`` (one unit per window): an ``anomaly`` card on
  ``gpt-4o:p95_latency_ms``, direction up, whose window overlaps the planted window;
* ``cost_spike`` (one unit): an ``anomaly`` card on
  ``claude-3-5-sonnet:cost_per_request``, up,
  overlapping the planted window;
* ``point_anomaly`` (one unit per date): an ``anomaly`` card on ``orders`` or
  ``revenue`` in the planted direction whose window contains the date;
* ``level_shift`` (one unit): a ``level_shift`` card on ``average_order_value`` or
  ``revenue`` stepping up within seven days of the planted date (the 28-day scan
  places the step to within a few days), or an ``anomaly`` card on ``revenue``, up,
  starting within seven days after it;
* ``drift`` (one unit): a ``drift`` card for the model and ``input_tokens``;
* ``savings_opportunity`` (one unit): a ``savings`` card for the feature, the current
  and the cheaper model.

Window overlaps allow one day of slack on each side. Effects outside the analysed range
are not counted.

False findings
--------------
* Effect-free worlds: every ``correlation``, ``anomaly``, ``level_shift``, ``drift`` and
  ``savings`` card is false (nothing was planted). ``mover`` and ``forecast_risk`` cards
  describe the worlds' real growth and seasonality, so they are reported but not counted
  as false.
  The headline number is the strictest: the **share of effect-free runs with at least
  one false card of any counted kind** (the goal, false findings <= 5 %, read as at most
  one run in twenty); next to it the share of effect-free runs with at least one false
  correlation finding (a family-wise rate, stricter than the FDR the engine controls) and
  the false correlation findings per hypothesis tested.
* Effect worlds: correlation cards other than the planted pair are false too.

Goals (issue 7): recall >= 0.9, false findings <= 5 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

COUNTED_FALSE = ("correlation", "anomaly", "level_shift", "drift", "savings")


def _overlaps(a0: date, a1: date, b0: date, b1: date, slack: int = 1) -> bool:
    """Inclusive ranges [a0, a1] and [b0, b1] overlap, with ``slack`` days either side."""
    return a0 <= b1 + timedelta(days=slack) and b0 <= a1 + timedelta(days=slack)


def _d(value: Any) -> date:
    """A date from an ISO string or date-like."""
    import pandas as pd

    return pd.Timestamp(value).date()


def _units(manifest: dict[str, Any], lo: date, hi: date) -> list[dict[str, Any]]:
    """The recall units of a manifest inside ``[lo, hi)``."""
    units = []
    for effect in manifest["effects"]:
        kind = effect["type"]
        if kind == "conversion_dip":
            units.append({"type": kind, "lag": effect["lag_days"]})
        elif kind in ("latency_degradation", "cost_spike"):
            for start, end in effect["windows"]:
                s, e = _d(start), _d(end) - timedelta(days=1)
                if lo <= s and e < hi:
                    units.append({"type": kind, "model_id": effect["model_id"], "window": (s, e)})
        elif kind in ("point_anomaly", "level_shift"):
            day = _d(effect["date"])
            if lo <= day < hi:
                units.append(
                    {"type": kind, "date": day, "direction": effect.get("direction", "up")}
                )
        elif kind == "drift":
            units.append({"type": kind, "model_id": effect["model_id"], "metric": effect["metric"]})
        elif kind == "savings_opportunity":
            units.append(
                {
                    "type": kind,
                    "feature": effect["feature"],
                    "current": effect["current_model"],
                    "cheaper": effect["cheaper_model"],
                }
            )
    return units


def _matches(unit: dict[str, Any], card: dict[str, Any]) -> bool:
    """Whether a card (``to_dict`` form) finds a recall unit."""
    ev, kind = card["evidence"], card["kind"]
    t = unit["type"]
    if t == "conversion_dip":
        return (
            kind == "correlation"
            and ev["ml_series"] == "gpt-4o:p95_latency_ms"
            and ev["business_metric"] == "conversion_rate"
            and ev["pearson_r"] < 0
            and abs(ev["lag_days"] - unit["lag"]) <= 1
        )
    if kind == "anomaly":
        s, e = _d(ev["start"]), _d(ev["end"])
        if t == "latency_degradation" or t == "cost_spike":
            metric = "p95_latency_ms" if t == "latency_degradation" else "cost_per_request"
            return (
                ev["series"] == f"{unit['model_id']}:{metric}"
                and ev["direction"] == "up"
                and _overlaps(s, e, *unit["window"])
            )
        if t == "point_anomaly":
            return (
                ev["series"] in ("orders", "revenue")
                and ev["direction"] == unit["direction"]
                and _overlaps(s, e, unit["date"], unit["date"])
            )
        if t == "level_shift":
            return (
                ev["series"] == "revenue"
                and ev["direction"] == "up"
                and unit["date"] <= s <= unit["date"] + timedelta(days=7)
            )
    if t == "level_shift" and kind == "level_shift":
        return (
            ev["metric"] in ("average_order_value", "revenue")
            and ev["change_pct"] > 0
            and abs((_d(ev["date"]) - unit["date"]).days) <= 7
        )
    if t == "drift":
        return (
            kind == "drift"
            and ev["model_id"] == unit["model_id"]
            and ev["metric"] == unit["metric"]
        )
    if t == "savings_opportunity":
        return (
            kind == "savings"
            and ev["feature"] == unit["feature"]
            and ev["current_model"] == unit["current"]
            and ev["candidate_model"] == unit["cheaper"]
        )
    return False


def _text(value: Any) -> Any:
    """JSON-friendly text of a unit field (date ranges as ISO strings)."""
    if isinstance(value, tuple):
        return [str(v) for v in value]
    return value if isinstance(value, int | str) else str(value)


def _is_planted_pair(card: dict[str, Any]) -> bool:
    """A correlation card about the planted gpt-4o latency / conversion pair."""
    ev = card["evidence"]
    return ev["ml_series"] == "gpt-4o:p95_latency_ms" and ev["business_metric"] == "conversion_rate"


def run_seed(args: tuple[int, str, int, int, int]) -> dict[str, Any]:
    """Build both worlds of one seed, run the insights, score them."""
    seed, workdir, events, months, burn_in = args
    from auterity import insights, warehouse
    from auterity.demo import generate as demo_data

    out: dict[str, Any] = {"seed": seed}
    end = date(2026, 11, 1)
    for effects in (True, False):
        path = Path(workdir) / f"insights_{seed}_{'effects' if effects else 'plain'}.duckdb"
        url = f"duckdb:///{path}"
        t0 = time.perf_counter()
        cfg = demo_data.DemoConfig(
            seed=seed, events=events, months=months, end=end, effects=effects
        )
        manifest = demo_data.build(cfg, url=url)
        warehouse.dispose_engines()
        built = time.perf_counter() - t0
        lo, hi = cfg.start + timedelta(days=burn_in), cfg.end
        report = insights.run(lo, hi, url=url).to_dict()
        seconds = time.perf_counter() - t0 - built
        warehouse.dispose_engines()
        for suffix in ("", ".wal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        cards = report["cards"]
        by_kind: dict[str, int] = {}
        for card in cards:
            by_kind[card["kind"]] = by_kind.get(card["kind"], 0) + 1
        entry: dict[str, Any] = {
            "build_s": round(built, 1),
            "insights_s": round(seconds, 1),
            "cards_by_kind": by_kind,
            "tested": report["tested"],
            "skipped": report["skipped"],
        }
        if effects:
            units = _units(manifest, lo, hi)
            found = [any(_matches(u, c) for c in cards) for u in units]
            entry["units"] = [
                {**{k: _text(v) for k, v in u.items()}, "found": f}
                for u, f in zip(units, found, strict=True)
            ]
            entry["exact_lag"] = any(
                c["kind"] == "correlation"
                and _is_planted_pair(c)
                and c["evidence"]["lag_days"] == 1
                for c in cards
            )
            entry["false_correlations"] = sum(
                1 for c in cards if c["kind"] == "correlation" and not _is_planted_pair(c)
            )
            entry["false_descriptions"] = [
                c["sentence"]
                for c in cards
                if c["kind"] == "correlation" and not _is_planted_pair(c)
            ]
        else:
            entry["false_by_kind"] = {k: by_kind.get(k, 0) for k in COUNTED_FALSE}
            entry["false_descriptions"] = [
                c["sentence"] for c in cards if c["kind"] in COUNTED_FALSE
            ]
        out["effects" if effects else "plain"] = entry
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall per effect type and overall, false-finding rates."""
    per_type: dict[str, list[bool]] = {}
    for run in runs:
        for unit in run["effects"]["units"]:
            per_type.setdefault(unit["type"], []).append(unit["found"])
    all_units = [f for found in per_type.values() for f in found]
    plain = [run["plain"] for run in runs]
    hypotheses = sum(p["tested"].get("correlation_hypotheses", 0) for p in plain)
    false_corr = sum(p["false_by_kind"]["correlation"] for p in plain)
    return {
        "recall": sum(all_units) / len(all_units) if all_units else None,
        "recall_by_type": {k: sum(v) / len(v) for k, v in per_type.items()},
        "units_by_type": {k: len(v) for k, v in per_type.items()},
        "correlation_exact_lag_share": sum(r["effects"]["exact_lag"] for r in runs) / len(runs),
        "plain_runs_with_false_correlation": sum(
            p["false_by_kind"]["correlation"] > 0 for p in plain
        )
        / len(plain),
        "plain_false_correlations_per_hypothesis": false_corr / hypotheses if hypotheses else None,
        "plain_runs_with_any_false_card": sum(any(p["false_by_kind"].values()) for p in plain)
        / len(plain),
        "plain_false_cards_by_kind": {
            k: sum(p["false_by_kind"][k] for p in plain) for k in COUNTED_FALSE
        },
        "effects_runs_with_false_correlation": sum(
            r["effects"]["false_correlations"] > 0 for r in runs
        )
        / len(runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir", type=Path, help="Directory for the temporary warehouses.")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument(
        "--seed-list",
        type=lambda text: [int(v) for v in text.split(",") if v.strip()],
        default=None,
        help="Comma-separated seeds to run instead of --seeds from --first-seed.",
    )
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--months", type=int, default=9)
    parser.add_argument("--burn-in", type=int, default=45, help="Days skipped at the start.")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "insights.json"
    )
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    seeds = args.seed_list or range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(seed, str(args.workdir), args.events, args.months, args.burn_in) for seed in seeds]
    started = time.perf_counter()
    runs: list[dict[str, Any]] = []
    if args.processes > 1:
        with ProcessPoolExecutor(args.processes) as pool:
            for result in pool.map(run_seed, jobs):
                runs.append(result)
                _progress(result)
    else:
        for job in jobs:
            result = run_seed(job)
            runs.append(result)
            _progress(result)
    summary = summarise(runs)
    elapsed = time.perf_counter() - started
    print()
    print(f"{'measure':<48} {'value':>10}  goal")
    print(f"{'recall of planted effects (all units)':<48} {summary['recall']:>10.3f}  >= 0.9")
    for kind, value in summary["recall_by_type"].items():
        n = summary["units_by_type"][kind]
        print(f"{'  recall ' + kind + f' ({n} units)':<48} {value:>10.3f}")
    print(
        f"{'  correlation found at exactly lag_days':<48} "
        f"{summary['correlation_exact_lag_share']:>10.3f}"
    )
    print(
        f"{'effect-free runs with any false card':<48} "
        f"{summary['plain_runs_with_any_false_card']:>10.3f}  <= 0.05"
    )
    for kind, count in summary["plain_false_cards_by_kind"].items():
        print(f"{'  false ' + kind + ' cards (all runs)':<48} {count:>10d}")
    print(
        f"{'effect-free runs with a false correlation':<48} "
        f"{summary['plain_runs_with_false_correlation']:>10.3f}  <= 0.05"
    )
    rate = summary["plain_false_correlations_per_hypothesis"]
    print(f"{'false correlations per hypothesis tested':<48} {rate:>10.2e}")
    print(
        f"{'effect runs with a false correlation':<48} "
        f"{summary['effects_runs_with_false_correlation']:>10.3f}"
    )
    print(f"{'seconds':<48} {elapsed:>10.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "config": {
                    "seeds": [j[0] for j in jobs],
                    "events": args.events,
                    "months": args.months,
                    "burn_in_days": args.burn_in,
                },
                "summary": summary,
                "seconds": round(elapsed, 1),
                "runs": runs,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


def _progress(result: dict[str, Any]) -> None:
    """One line per finished seed."""
    eff, plain = result["effects"], result["plain"]
    found = sum(u["found"] for u in eff["units"])
    print(
        f"seed {result['seed']:>3}: found {found}/{len(eff['units'])}, "
        f"false correlations {eff['false_correlations']} (effects) / "
        f"{plain['false_by_kind']['correlation']} (plain), "
        f"false cards (plain) {sum(plain['false_by_kind'].values())}, "
        f"{eff['insights_s'] + plain['insights_s']:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())

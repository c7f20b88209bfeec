"""How close `plan()` came: its estimates of peak memory and time against what conversions measured.

    .venv/bin/python bench/bench_plan.py [--threads N] [OUTPUT ...]

With no arguments, every output under bench/out/ that has a report card (the GGUF types from
bench_gguf_export.py, the weight-only runs from bench_weight_only.py, INT8 from bench_int8.py).
The plan is rebuilt from the card's own settings (source, method, type, bits, group, calibration
size), so it is the estimate the user would have seen before that run. Measured figures are the
card's: `seconds` (the job, calibration included) and `peak_rss_bytes` (sampled resident peak).
Timings taken on a busy machine make the measured side slower than the plan assumes; the load
average at the time is not in the card, so read time ratios above 1 with that in mind.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def outputs(args: list[str]) -> list[Path]:
    if args:
        return [Path(a) for a in args]
    out = ROOT / "bench" / "out"
    found = sorted(out.glob("*.gguf")) + sorted(p.parent for p in out.glob("*/*/bitsmith-report.json"))
    return [p for p in found if not p.name.endswith(".imatrix.gguf")]


def config_from_card(path: Path, card: dict):
    from bitsmith.engine.config import QuantizeConfig

    settings = card.get("settings") or {}
    calib = card.get("calibration") if isinstance(card.get("calibration"), dict) else {}
    method = card.get("method")
    common = dict(source=card["source"], out=path.with_name(path.name + ".plan"), method=method, device="cpu")
    if method == "gguf":
        return QuantizeConfig(**common, gguf_type=card["type"], imatrix=bool(settings.get("imatrix")),
                              calibration=settings.get("calibration") or "builtin",
                              samples=settings.get("samples") or 128, seq_len=settings.get("seq_len") or 512)
    return QuantizeConfig(**common, bits=settings.get("bits", 4), group_size=settings.get("group_size"),
                          desc_act=bool(settings.get("desc_act")), calibration=calib.get("source") or "builtin",
                          samples=calib.get("samples") or 128, seq_len=calib.get("seq_len") or 512)


def main() -> None:
    import argparse

    import torch

    from bitsmith.engine import api
    from bitsmith.engine.plan import machine_gflops
    from bitsmith.engine.reportcard import read_report_card

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, help="torch threads, as the measured runs used (the plan scales with them)")
    ap.add_argument("paths", nargs="*")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine probe: {machine_gflops():.1f} GFLOP/s with {torch.get_num_threads()} thread(s)")
    rows = []
    for path in outputs(args.paths):
        card = read_report_card(path)
        if not card or card.get("kind") != "quantization" or not Path(card.get("source", "")).exists():
            continue
        try:
            plan = api.plan(config_from_card(path, card))
        except Exception as exc:  # noqa: BLE001 - a card this plan cannot rebuild is reported, not fatal
            print(f"{path.name}: cannot rebuild the plan ({exc})", file=sys.stderr)
            continue
        rows.append({
            "output": path.name, "method": card.get("method"), "type": card.get("type") or
            f"{(card.get('settings') or {}).get('bits')}-bit", "samples": (card.get("calibration") or {}).get("samples")
            if isinstance(card.get("calibration"), dict) else (card.get("settings") or {}).get("samples"),
            "plan_s": plan.seconds, "measured_s": card.get("seconds"),
            "plan_peak": plan.peak_memory_bytes, "measured_peak": card.get("peak_rss_bytes"),
            "plan_size": plan.output_bytes, "measured_size": card.get("size_bytes"),
        })
    print("| output | plan time | measured | ratio | plan peak MB | measured MB | ratio | plan size MB | size MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["measured_s"] / r["plan_s"] if r["plan_s"] and r["measured_s"] else None
        m = r["measured_peak"] / r["plan_peak"] if r["plan_peak"] and r["measured_peak"] else None
        print(f"| {r['output']} | {r['plan_s']:.0f} s | {r['measured_s'] or 0:.0f} s | {t or 0:.2f} | "
              f"{r['plan_peak'] / 1e6:.0f} | {(r['measured_peak'] or 0) / 1e6:.0f} | {m or 0:.2f} | "
              f"{r['plan_size'] / 1e6:.1f} | {(r['measured_size'] or 0) / 1e6:.1f} |")
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "bench_plan.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

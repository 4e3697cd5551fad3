"""Make a baseline file from an InferenceMAX-style aggregated JSON (``agg_<exp>.json``).

InferenceMAX's ``collect_results.py`` writes a list of ``process_result.py`` entries, each with
``hw``, ``framework``, ``precision``, ``tp``, ``conc``, ``isl``, ``osl``, ``tput_per_gpu`` (tok/s/GPU),
``median_e2el`` (seconds) and ``median_intvty`` (tok/s/user). This picks the entries of one
hardware/framework (and TP, when several were run) and writes ``baselines/<name>.toml``:

    python -m pytest_inferencemax.cli.baseline_import agg_gptoss_1k1k.json --model-key gptoss \\
        --hw b200 --framework trt --tp 8 --title "B200 TRT, InferenceMAX 2026-03-01" --out baselines/b200-0301.toml
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from pytest_inferencemax.judge.baseline import BaselineError, load_baseline

NEEDED = ("isl", "osl", "conc", "tput_per_gpu", "median_e2el", "median_intvty")


def select(entries: list[dict[str, Any]], *, hw: str | None, framework: str | None, tp: int | None) -> list[dict]:
    """The entries of one configuration; several TPs for one point is an error naming them."""
    def keep(e: dict[str, Any]) -> bool:
        return ((hw is None or str(e.get("hw", "")).lower().startswith(hw.lower()))
                and (framework is None or str(e.get("framework", "")).lower() == framework.lower())
                and (tp is None or int(e.get("tp", -1)) == tp))

    chosen = [e for e in entries if keep(e)]
    by_point: dict[tuple[int, int, int], list[dict]] = {}
    for e in chosen:
        missing = [k for k in NEEDED if k not in e]
        if missing:
            raise BaselineError(f"an entry lacks {missing}: {json.dumps(e)[:200]}; is this an InferenceMAX agg file?")
        by_point.setdefault((int(e["isl"]), int(e["osl"]), int(e["conc"])), []).append(e)
    for point, found in by_point.items():
        if len(found) > 1:
            options = sorted({(x.get("hw"), x.get("framework"), x.get("tp")) for x in found}, key=str)
            raise BaselineError(f"(isl, osl, conc) {point} has {len(found)} entries {options}: narrow with "
                                "--hw, --framework and --tp")
    if not chosen:
        raise BaselineError("no entry matches --hw/--framework/--tp; the file has "
                            f"{sorted({(e.get('hw'), e.get('framework'), e.get('tp')) for e in entries}, key=str)}")
    return sorted(chosen, key=lambda e: (int(e["isl"]), int(e["osl"]), int(e["conc"])))


def to_toml(entries: list[dict[str, Any]], *, model_key: str, title: str, origin: str, group: str, prefix: str,
            tag: str) -> str:
    def q(text: str) -> str:
        return json.dumps(text)  # a JSON string is a valid TOML basic string

    lines = ["[source]", f"title = {q(title)}", f"origin = {q(origin)}", f"recorded = {q(date.today().isoformat())}",
             f"group = {q(group)}", f"prefix = {q(prefix)}", f"tag = {q(tag)}", "", "[models]", f"{model_key} = ["]
    for e in entries:
        lines.append(f"  {{ isl = {int(e['isl'])}, osl = {int(e['osl'])}, conc = {int(e['conc'])}, "
                     f"median_e2e_ms = {float(e['median_e2el']) * 1000:.6g}, "
                     f"median_intvty = {float(e['median_intvty']):.6g}, tput_per_gpu = {float(e['tput_per_gpu']):.6g} }},")
    lines.append("]")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pytest_inferencemax.cli.baseline_import", description=__doc__.splitlines()[0])
    p.add_argument("agg", type=Path, help="InferenceMAX aggregated JSON (a list of processed results)")
    p.add_argument("--model-key", required=True, help="the model's key in the baseline file, e.g. gptoss or dsr1")
    p.add_argument("--hw", help="hardware prefix to keep, e.g. b200 or mi355x")
    p.add_argument("--framework", help="framework to keep, e.g. trt, vllm, sglang")
    p.add_argument("--tp", type=int, help="TP to keep when several were run")
    p.add_argument("--title", required=True, help="what these numbers are (kept in the file)")
    p.add_argument("--group", default="b200_baseline_nv1126", help="result-JSON group key (default: %(default)s)")
    p.add_argument("--prefix", default="b200", help="field prefix (default: %(default)s)")
    p.add_argument("--tag", default="1126", help="field tag (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="baseline file to write, e.g. baselines/b200-0301.toml")
    args = p.parse_args(argv)
    try:
        data = json.loads(args.agg.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise BaselineError(f"{args.agg}: expected a JSON list of results (InferenceMAX agg_*.json)")
        entries = select(data, hw=args.hw, framework=args.framework, tp=args.tp)
        text = to_toml(entries, model_key=args.model_key, title=args.title,
                       origin=f"imported from {args.agg.name} (hw={args.hw}, framework={args.framework}, tp={args.tp})",
                       group=args.group, prefix=args.prefix, tag=args.tag)
        args.out.write_text(text, encoding="utf-8")
        load_baseline(args.out)  # the schema check: what we wrote must load
    except (OSError, json.JSONDecodeError, BaselineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(entries)} points for {args.model_key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Recipe variants: the file, grids, what a variant changes in a rendered recipe, test ids, the
ranking, and the pruning rule (the end-to-end runs: tests/e2e/test_variants_e2e.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_inferencemax.judge.baseline import comparison
from pytest_inferencemax.judge.curve import build_curves, curve_point
from pytest_inferencemax.judge.prune import prune_reason
from pytest_inferencemax.judge.ranking import rank_variants
from pytest_inferencemax.judge.verdict import judge_curves
from pytest_inferencemax.plan.rules import parse_rule
from pytest_inferencemax.plan.points import PlanOptions, plan_points
from pytest_inferencemax.plan.recipe import RecipeContext, render_recipe
from pytest_inferencemax.plan.suite import load_suite
from pytest_inferencemax.plan.variants import VariantsError, load_variants
from pytest_inferencemax.publish.variants import overlay_plots, ranking_data, render_variants
from pytest_inferencemax.results.pool import pool_rounds
from record_factory import baseline_table, point_record

REPO = Path(__file__).resolve().parents[2]
SHARE = {"rule": "beat_baseline_share", "min_share": 0.5, "metric": "tput_per_gpu"}


def variants_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "variants.toml"
    path.write_text(text)
    return path


GRID = '''
[[variant]]
name = "base"

[[variant]]
name = "mns${mns}_mbt${mbt}"
grid = { mns = [2, 4], mbt = [256, 512, 1024] }
args_set = { "--max-num-seqs" = "${mns}", "--max-num-batched-tokens" = "${mbt}" }
env = { VLLM_CPU_KVCACHE_SPACE = "3" }

[[variant]]
name = "eagerless"
args_remove = ["--enforce-eager"]
args_add = ["--disable-log-stats"]
env_remove = ["HF_HUB_OFFLINE"]
'''


def test_a_grid_expands_to_one_variant_per_combination_in_file_order(tmp_path):
    found = load_variants(variants_file(tmp_path, GRID))
    names = [v.name for v in found.variants]
    assert names == ["base", "mns2_mbt256", "mns2_mbt512", "mns2_mbt1024", "mns4_mbt256", "mns4_mbt512",
                     "mns4_mbt1024", "eagerless"]
    assert found.get("mns4_mbt512").args_set == (("--max-num-seqs", "4"), ("--max-num-batched-tokens", "512"))
    assert found.get("mns4_mbt512").grid == (("mns", "4"), ("mbt", "512"))
    assert "8 variant(s)" in found.describe() and "grid 2 x 3" in found.describe()
    with pytest.raises(VariantsError, match="8 variants exceed --max-variants 4.*--max-variants 8"):
        load_variants(variants_file(tmp_path, GRID), limit=4)


def test_a_variant_changes_the_rendered_recipe_and_its_hash(tmp_path):
    suite = load_suite(REPO / "suites" / "smollm2-cpu")
    ctx = RecipeContext(model="/m", served_model_name="smollm2", tokenizer="/m", files_dir=Path("/tmp/f"),
                        models_dir=Path("/models"), host="127.0.0.1")
    point = plan_points(suite)[0]
    base = render_recipe(suite, point, ctx)
    found = load_variants(variants_file(tmp_path, GRID + '\n[[variant]]\nname = "x"\n'
                                        'args_set = { "--max-model-len" = "1024" }\n'))
    v = render_recipe(suite, point, ctx, found.get("mns4_mbt512"))
    i = base.argv.index("--max-num-batched-tokens")  # the suite's own: replaced where it stands
    assert v.argv[:len(base.argv)] == (*base.argv[:i + 1], "512", *base.argv[i + 2:])
    assert v.argv[len(base.argv):] == ("--max-num-seqs", "4")  # an absent flag is added
    assert dict(v.env)["VLLM_CPU_KVCACHE_SPACE"] == "3" and v.key != base.key and v.variant == "mns4_mbt512"
    e = render_recipe(suite, point, ctx, found.get("eagerless"))
    assert "--enforce-eager" not in e.argv and e.argv[-1] == "--disable-log-stats"
    assert "HF_HUB_OFFLINE" not in dict(e.env)
    assert render_recipe(suite, point, ctx, found.get("base")).key == base.key  # same recipe, same hash
    x = render_recipe(suite, point, ctx, found.get("x"))
    i = x.argv.index("--max-model-len")
    assert x.argv[i + 1] == "1024" and x.argv.count("--max-model-len") == 1  # replaced in place


@pytest.mark.parametrize("text, words", [
    ('[[variant]]\nname = "a-b"\n', "letters, digits"),
    ('[[variant]]\nname = "a"\n[[variant]]\nname = "a"\n', "used twice"),
    ('[[variant]]\nname = "g"\ngrid = { x = [1, 2] }\n', "put every grid key in the name"),
    ('[[variant]]\nname = "g${y}"\ngrid = { x = [1] }\n', "not a grid key"),
    ('[[variant]]\nname = "a"\nargs = ["--x"]\n', "Each \\[\\[variant\\]\\] takes"),
    ('variant = 3', "variant"),
    ('[[variant]\n', "not valid TOML"),
])
def test_a_bad_variants_file_names_the_problem_and_the_fix(tmp_path, text, words):
    with pytest.raises(VariantsError, match=words):
        load_variants(variants_file(tmp_path, text))


def test_every_point_once_per_variant_with_k_friendly_ids():
    suite = load_suite(REPO / "suites" / "smollm2-cpu")
    points = plan_points(suite, PlanOptions(variants=("base", "mns2")))
    assert [p.id for p in points] == ["smollm2-128-64-c1-base", "smollm2-128-64-c2-base", "smollm2-128-64-c4-base",
                                      "smollm2-128-64-c1-mns2", "smollm2-128-64-c2-mns2", "smollm2-128-64-c4-mns2"]
    assert [p.id for p in plan_points(suite)] == ["smollm2-128-64-c1", "smollm2-128-64-c2", "smollm2-128-64-c4"]


def _rec(conc: int, tput: float, variant: str, base=baseline_table({4: 300.0, 8: 300.0})):
    rec = point_record(conc, tput, ours={"variant": variant, "point": f"gptoss-1024-1024-c{conc}-{variant}"})
    comparison(base, "gptoss", rec)
    return rec


def test_variants_rank_by_qualification_then_share_then_geometric_mean(tmp_path):
    records = [_rec(4, 330, "a"), _rec(8, 290, "a"),    # 1 of 2 beat: qualified, geomean sqrt(1.1 x 0.967)
               _rec(4, 600, "b"), _rec(8, 600, "b"),    # 2 of 2: qualified, the best
               _rec(4, 200, "c"), _rec(8, 310, "c")]    # 1 of 2 with a lower geometric mean
    curves, verdicts = judge_curves(build_curves(records), {("gptoss", "s1"): SHARE})
    ranking = rank_variants(curves, verdicts)
    assert [o.variant for o in ranking.overall] == ["b", "a", "c"] and ranking.best == "b"
    rows = [(r.variant, r.qualified, r.beats, r.share) for r in ranking.rows]
    assert rows == [("b", True, 2, 1.0), ("a", True, 1, 0.5), ("c", True, 1, 0.5)]
    a = next(r for r in ranking.rows if r.variant == "a")
    assert a.tput_geomean == pytest.approx((330 / 300 * 290 / 300) ** 0.5)
    md = render_variants(ranking)
    assert "**Best overall: b**" in md and "| 1 | b | 1 of 1 | 100% | 2.000 | 600.0 |" in md
    assert ranking_data(ranking)["curves"][0]["best"] == "b"
    pngs = overlay_plots(curves, tmp_path)
    assert [p.name for p in next(iter(pngs.values()))] == ["gptoss-s1-1024-1024-variants-tput-vs-e2e.png",
                                                          "gptoss-s1-1024-1024-variants-tput-vs-intvty.png"]
    assert rank_variants(build_curves([point_record(4, 1.0)]), {}) is None  # no variants, no ranking


def test_pruning_stops_a_curve_once_too_many_points_are_lost_beyond_the_noise():
    rule = parse_rule(SHARE)
    lost = curve_point(_rec(4, 250, "a"))[1]  # 17 % below: beyond a 5 % margin
    close = curve_point(_rec(8, 290, "a"))[1]  # 3 % below: within the margin, might still turn
    assert prune_reason(rule, 4, [lost], 0.05) is None  # 3 of 4 could still beat
    assert prune_reason(rule, 4, [lost, close], 0.05) is None  # the close one is not counted as lost
    why = prune_reason(rule, 3, [lost, curve_point(_rec(8, 200, "a"))[1]], 0.05)
    assert why.startswith("2 of 3 points lost beyond the noise (CONC 4: tput_per_gpu 250 vs 300 (-16.7%)")
    assert "at most 1 can beat the baseline, 2 must" in why
    assert prune_reason(parse_rule(None), 3, [lost, lost], 0.05) is None  # no rule, nothing to prune for
    # with rounds, the interval decides: a wide one is not lost even 10 % below
    recs = [_rec(4, t, "a") for t in (200, 340, 270)]
    wide = curve_point(pool_rounds(recs, ["a", "b", "c"]))[1]
    assert prune_reason(rule, 2, [wide], 0.05) is None
    tight = curve_point(pool_rounds([_rec(4, t, "a") for t in (270, 271, 269)], ["a", "b", "c"]))[1]
    assert prune_reason(rule, 1, [tight], 0.5).startswith("1 of 1 points lost")  # the interval, not the margin


def test_variant_runs_from_several_folders_merge_into_one_ranking(tmp_path):
    from pytest_inferencemax.cli.merge import merge
    from pytest_inferencemax.results.store import RunFolder

    for node, variant, tput in (("n1", "a", 300.0), ("n2", "b", 450.0)):
        folder = RunFolder(tmp_path / node / "run")
        for conc in (4, 8):
            folder.write_point(_rec(conc, tput, variant))
    finished, failures = merge([tmp_path / "n1", tmp_path / "n2"], tmp_path / "merged", echo=lambda _l: None)
    data = json.loads((tmp_path / "merged" / "variants.json").read_text())
    assert finished.ranking.best == "b" and data["best"] == "b" and failures == []
    assert [v["variant"] for v in data["curves"][0]["variants"]] == ["b", "a"]
    assert (tmp_path / "merged" / "plots" / "gptoss-s1-1024-1024-variants-tput-vs-intvty.png").is_file()

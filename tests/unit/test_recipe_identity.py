"""A recipe's hash is what its server runs: the same in every run folder, on every port and machine,
different when an argument, a variable, a file's content or a variant differs (plan/recipe.py); the
plan shows the command it covers; records hashed the old way are named as such (results/identity.py)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inferencemax.results.merge import check_consistent
from pytest_inferencemax.results.merge_inputs import MergeError, Run
from pytest_inferencemax.plan.points import plan_points
from pytest_inferencemax.plan.recipe import RecipeContext, render_recipe
from pytest_inferencemax.plan.suite import load_suite
from pytest_inferencemax.plan.variants import Variant
from pytest_inferencemax.results.identity import configuration
from pytest_inferencemax.results.store import RunFolder
from record_factory import point_record

REPO = Path(__file__).resolve().parents[2]
SUITE_DIRS = sorted(p.parent for p in (REPO / "suites").glob("*/suite.toml"))
POINT_KEY = re.compile(r"^  (\S+): .*server recipe (\S+)$")

SUITE = """\
[suite]
name = "ident"
model = "${models_dir}/Model-A"
engine = "vllm"
default_stage = "s1"

[server]
argv = ["${python}", "-m", "vllm.entrypoints.openai.api_server", "--model", "${model}", "--port", "${port}",
        "--config", "${files_dir}/cfg.yaml", "--chat-template", "${suite_dir}/chat.jinja", "--max-model-len", "2048"]
env = { CACHE_DIR = "${files_dir}/cache", MODE = "fast" }

[server.files]
"cfg.yaml" = "block-size: 64\\n"

[stages.s1]
workloads = [{ isl = 128, osl = 64, conc = [1], prompts_per_conc = 2 }]
"""


def _suite(folder: Path, text: str = SUITE):
    folder.mkdir(parents=True)
    (folder / "suite.toml").write_text(text, encoding="utf-8")
    return load_suite(folder)


def _ctx(root: Path, suite) -> RecipeContext:
    """A run folder, models folder and interpreter of their own: another run on another machine."""
    model = suite.suite.model.replace("${models_dir}", str(root / "models"))
    return RecipeContext(model=model, served_model_name="m", tokenizer=model, files_dir=root / "run-x" / "server-files",
                         models_dir=root / "models", host="127.0.0.1", python=str(root / "venv" / "bin" / "python"))


def _key(tmp_path: Path, machine: str, text: str = SUITE, variant: Variant | None = None) -> str:
    suite = _suite(tmp_path / machine / "suites" / "ident", text)
    return render_recipe(suite, plan_points(suite)[0], _ctx(tmp_path / machine, suite), variant).key


def test_the_key_is_independent_of_port_run_folder_and_machine_paths(tmp_path):
    a, b = (_suite(tmp_path / m / "suites" / "ident") for m in ("a", "b"))
    ra = render_recipe(a, plan_points(a)[0], _ctx(tmp_path / "a", a))
    rb = render_recipe(b, plan_points(b)[0], _ctx(tmp_path / "b", b))
    assert ra.command(8000) != rb.command(9000) and ra.env != rb.env  # every path and the port differ...
    assert ra.key == rb.key  # ...and the hash does not
    assert ra.key.startswith("r2-") and len(ra.key) == 15
    assert rb.identity().argv == ("${python}", "-m", "vllm.entrypoints.openai.api_server",
                                  "--model", "${models_dir}/Model-A", "--port", "${port}",
                                  "--config", "${files_dir}/cfg.yaml", "--chat-template", "${suite_dir}/chat.jinja",
                                  "--max-model-len", "2048")
    assert dict(rb.identity().env) == {"CACHE_DIR": "${files_dir}/cache", "MODE": "fast"}


@pytest.mark.parametrize("change", [
    pytest.param(('"block-size: 64\\n"', '"block-size: 32\\n"'), id="file-content"),
    pytest.param(('"--max-model-len", "2048"', '"--max-model-len", "4096"'), id="argv-value"),
    pytest.param(('MODE = "fast"', 'MODE = "slow"'), id="env-value"),
    pytest.param(('"${models_dir}/Model-A"', '"${models_dir}/Model-B"'), id="model-in-models-dir"),
    pytest.param(('"${suite_dir}/chat.jinja"', '"/srv/chat.jinja"'), id="placeholder-vs-literal-path"),
])
def test_the_key_changes_with_what_the_server_runs_and_only_with_that(tmp_path, change):
    old, new = change
    text = SUITE.replace(old, new)
    assert text != SUITE
    base = {_key(tmp_path, m) for m in ("a", "b")}
    changed = {_key(tmp_path, m, text) for m in ("c", "d")}
    assert len(base) == 1 and len(changed) == 1  # one hash in any run folder / machine
    assert base != changed


def test_a_variant_changes_the_key_the_same_way_everywhere(tmp_path):
    v = Variant(name="big", args_set=(("--max-model-len", "8192"),), env=(("EXTRA", "1"),))
    keys = {m: _key(tmp_path, m, variant=v) for m in ("a", "b")}
    assert keys["a"] == keys["b"] != _key(tmp_path, "c")
    assert _key(tmp_path, "d", variant=Variant(name="base")) == _key(tmp_path, "e")  # no change, same hash


def test_a_path_is_put_back_only_where_it_is_whole(tmp_path):
    suite = _suite(tmp_path / "s")
    ctx = RecipeContext(model="m", served_model_name="m", tokenizer="m", files_dir=Path("/r/run/f"),
                        models_dir=Path("/data/models"), host="h", python="/usr/bin/python3")
    r = render_recipe(suite, plan_points(suite)[0], ctx)
    assert r.symbolic("/data/models/A") == "${models_dir}/A"
    assert r.symbolic("--model=/data/models") == "--model=${models_dir}"
    assert r.symbolic("/data/models2/A") == "/data/models2/A"  # another folder that only starts alike
    assert r.symbolic("/x/data/models/A") == "/x/data/models/A"
    assert r.symbolic("/usr/bin/python3.11") == "/usr/bin/python3.11"
    assert r.symbolic("/r/run/f/cfg.yaml,/data/models") == "${files_dir}/cfg.yaml,${models_dir}"


def test_a_workers_gpus_are_set_but_not_hashed(tmp_path):
    suite = _suite(tmp_path / "s")
    r = render_recipe(suite, plan_points(suite)[0], _ctx(tmp_path, suite))
    gw0, gw1 = r.placed({"CUDA_VISIBLE_DEVICES": "0,1"}), r.placed({"CUDA_VISIBLE_DEVICES": "2,3"})
    assert [g.environment(8000)["CUDA_VISIBLE_DEVICES"] for g in (gw0, gw1)] == ["0,1", "2,3"]
    assert gw0.key == gw1.key == r.key
    assert dict(gw0.env)["MODE"] == "fast"


COLLECT_ARGS = (*map(str, SUITE_DIRS), "--collect-only", "-p", "no:cacheprovider")


def _plan(stdout: str) -> tuple[dict[str, str], list[str]]:
    """Each point's recipe hash, and the commands, out of a ``--collect-only`` plan."""
    lines = stdout.splitlines()
    keys = {m[1]: m[2] for line in lines if (m := POINT_KEY.match(line))}
    return keys, [line for line in lines if line.startswith("  recipe ")]


def _start_fresh(cwd: Path, results: Path, models: Path) -> subprocess.Popen:
    """``pytest <every suite> --collect-only`` in a fresh process (its own hash seed, nothing imported)."""
    cwd.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "INFERENCEMAX"))}
    return subprocess.Popen([sys.executable, "-m", "pytest", *COLLECT_ARGS, "--results-dir", str(results),
                             "--models-dir", str(models)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_collect_only_runs_in_different_processes_give_every_suite_the_same_hashes(tmp_path, collect_only):
    """One run in a fresh process, the other in this one (another hash seed, and whatever the tests before it
    imported and set), side by side: the same hash per point, the same command per hash."""
    fresh = _start_fresh(tmp_path / "cwd-a", tmp_path / "results-a", tmp_path / "models-a")
    try:
        (tmp_path / "cwd-b").mkdir()
        here = collect_only(*map(str, SUITE_DIRS), "--results-dir", str(tmp_path / "elsewhere" / "results-b"),
                            "--models-dir", str(tmp_path / "models-b"), cwd=tmp_path / "cwd-b")
        out, err = fresh.communicate(timeout=120)
    finally:
        fresh.kill()
        fresh.wait()
    assert fresh.returncode == 0, out + err
    a, b = _plan(out), _plan(here.stdout.str())
    names = {load_suite(d).name for d in SUITE_DIRS}
    assert names == {point.split("-")[0] for point in a[0]}, a  # every suite's points were shown
    assert a[0] == b[0]  # one hash per recipe, whatever the run folder, cwd or models folder
    assert a[1] == b[1] and len(a[1]) == len(set(a[0].values()))  # one command line per hash, the same in both


def test_the_plan_shows_the_rendered_command_with_secrets_redacted(pytester, tmp_path):
    d = pytester.path / "sec"
    text = SUITE.replace('MODE = "fast"', 'MODE = "fast", HF_TOKEN = "hf_sekrit123"').replace(
        '"--max-model-len", "2048"', '"--max-model-len", "2048", "--api-key", "sk-sekrit456"')
    _suite(d, text)
    (d / "test_sec.py").write_text((REPO / "suites" / "smollm2-cpu" / "test_smollm2_cpu.py").read_text())
    result = pytester.runpytest_inprocess("sec", "--collect-only", "-p", "no:cacheprovider",
                                          "--results-dir", str(tmp_path / "res"), "--run-id", "r1",
                                          "--models-dir", str(tmp_path / "models"))
    out = result.stdout.str()
    assert "sekrit" not in out
    (line,) = [x for x in result.stdout.lines if x.startswith("  recipe r2-")]
    assert line.endswith(" runs: CACHE_DIR='${files_dir}/cache' HF_TOKEN='***' MODE=fast '${python}' -m "
                         "vllm.entrypoints.openai.api_server --model '${models_dir}/Model-A' --port '${port}' "
                         "--config '${files_dir}/cfg.yaml' --chat-template '${suite_dir}/chat.jinja' "
                         "--max-model-len 2048 --api-key '***'")
    assert "    writes ${files_dir}/cfg.yaml (15 bytes, its content in the hash)" in result.stdout.lines
    (where,) = [x for x in result.stdout.lines if x.startswith("  where ")]
    assert "${port} = a free port chosen when the server starts" in where
    assert f"${{files_dir}} = {tmp_path / 'res' / 'r1' / 'server-files'}" in where
    assert f"${{models_dir}} = {tmp_path / 'models'}" in where and f"${{python}} = {sys.executable}" in where


# --- records: merge pools what the hash says is one configuration; an older hash is named ----------------


def _record_of(tmp_path: Path, machine: str, port: int):
    suite = _suite(tmp_path / machine / "suites" / "ident")
    recipe = render_recipe(suite, plan_points(suite)[0], _ctx(tmp_path / machine, suite))
    rec = point_record()
    server = rec.ours.server.model_copy(update={"argv": recipe.command(port), "recipe_key": recipe.key,
                                                "base_url": f"http://127.0.0.1:{port}"})
    return rec.model_copy(update={"ours": rec.ours.model_copy(update={"server": server})})


def test_merge_pools_rounds_of_two_sessions_that_differ_only_in_port_and_run_folder(tmp_path):
    a, b = _record_of(tmp_path, "a", 8001), _record_of(tmp_path, "b", 8002)
    assert a.ours.server.argv != b.ours.server.argv
    check_consistent([Run(RunFolder(tmp_path / "ra"), [a]), Run(RunFolder(tmp_path / "rb"), [b])])  # no MergeError


def test_a_record_hashed_by_an_older_version_is_named_not_crashed_on(tmp_path):
    new = _record_of(tmp_path, "a", 8001)
    old = point_record()  # the golden record: written with a 12-hex-digit key
    assert configuration(old)["recipe"] == f"{old.ours.server.recipe_key} (hash of an older version)"
    assert configuration(new)["recipe"] == new.ours.server.recipe_key
    with pytest.raises(MergeError) as exc:
        check_consistent([Run(RunFolder(tmp_path / "old"), [old]), Run(RunFolder(tmp_path / "new"), [new])])
    assert f"recipe '{old.ours.server.recipe_key} (hash of an older version)' vs '{new.ours.server.recipe_key}'" \
        in str(exc.value)
    keyless = old.model_copy(update={"ours": old.ours.model_copy(update={
        "server": old.ours.server.model_copy(update={"recipe_key": None})})})
    assert "older version" in configuration(keyless)["recipe"]


def test_variant_reuse_finds_a_point_of_another_run_folder_and_names_one_an_older_version_hashed(tmp_path):
    from types import SimpleNamespace

    from pytest_inferencemax.plan.points import Point
    from pytest_inferencemax.plan.suite import ClientVersion
    from pytest_inferencemax.plugin.variant_runs import find_reusable, older_version_match
    from pytest_inferencemax.measure.checks import ClientVersionRecord

    suite = _suite(tmp_path / "s")
    recipe = lambda folder: render_recipe(suite, plan_points(suite)[0], _ctx(tmp_path / folder, suite))  # noqa: E731
    rec = point_record()
    a = rec.benchmark_args
    point = Point(suite=rec.ours.suite, stage=rec.ours.stage, isl=rec.ours.isl, osl=rec.ours.osl, conc=rec.ours.conc,
                  num_prompts=rec.num_prompts, num_warmups=a.num_warmups, range_ratio=float(a.random_range_ratio),
                  tp=8, tput_per_gpu_divisor=int(rec.ours.tput_per_gpu_divisor), variant="v1", client=ClientVersion())
    session = SimpleNamespace(settings=SimpleNamespace(rerun=False, server_url=None, results_dir=tmp_path / "results",
                                                       seed=a.seed),
                              run_dir=tmp_path / "results" / "now",
                              catalog=SimpleNamespace(recipe=lambda _s, _p: recipe("now"),
                                                      served_model_name=lambda _s: rec.model_id))

    def write(run: str, key: str) -> Path:
        server = rec.ours.server.model_copy(update={"recipe_key": key})
        ours = rec.ours.model_copy(update={"server": server, "client_version": ClientVersionRecord(
            **ClientVersion().model_dump())})
        path = tmp_path / "results" / run / f"{point.id}.json"
        path.parent.mkdir(parents=True)
        path.write_text(rec.model_copy(update={"ours": ours}).to_json(), encoding="utf-8")
        return path

    old = write("old", "c777fe3b23ff")  # an older version's hash of the same configuration
    assert find_reusable(session, suite, point) is None and older_version_match(session, suite, point) == old
    earlier = write("earlier", recipe("earlier").key)  # this version's, from another run folder
    assert find_reusable(session, suite, point)[1] == earlier

"""Suite files (loading, validation errors) and the points a stage expands to."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_inferencemax.plan.points import PlanOptions, Point, plan_points
from pytest_inferencemax.plan.suite import Suite, SuiteError, load_suite

REPO = Path(__file__).resolve().parents[2]

# A small valid suite; tests change one thing at a time.
BASE = """\
[suite]
name = "demo"
model = "org/demo-model"
engine = "vllm"
tp = 4
default_stage = "s1"

[server]
argv = ["vllm", "serve", "${model}", "--port", "${port}", "--tensor-parallel-size", "${tp}"]

[stages.s1]
range_ratio = 0.8
warmups_per_conc = 2
tput_per_gpu_divisor = "tp"
workloads = [
  { isl = 1024, osl = 1024, conc = [4, 8], prompts_per_conc = 10 },
  { isl = 8192, osl = 1024, conc = [16], prompts_per_conc = 5 },
]

[stages.s2]
warmups_per_conc = 0
tput_per_gpu_divisor = 8
workloads = [
  { isl = 1024, osl = 8192, conc = [1, 2], prompts_per_conc = 3 },
]
"""


def write_suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Suite:
    return load_suite(write_suite(tmp_path, text))


def suite_error(tmp_path: Path, text: str) -> str:
    path = write_suite(tmp_path, text)
    with pytest.raises(SuiteError) as exc:
        load_suite(path)
    msg = str(exc.value)
    assert str(path) in msg  # every error names the file
    return msg


# --- the real embedded suite -----------------------------------------------------------------


def test_embedded_smollm2_suite_loads():
    suite = load_suite(REPO / "suites" / "smollm2-cpu" / "suite.toml")
    assert suite.name == "smollm2"
    assert suite.suite.engine == "vllm"
    assert suite.suite.tp == 1
    assert suite.suite.default_stage == "cpu"
    assert suite.suite.served_model_name == "smollm2"
    assert suite.suite.model == "${models_dir}/SmolLM2-135M-Instruct"
    assert suite.directory == REPO / "suites" / "smollm2-cpu"
    assert "${port}" in suite.server.argv
    assert suite.server.env == {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "2"}
    stage_name, stage = suite.stage(None)
    assert stage_name == "cpu"
    assert stage.tput_per_gpu_divisor == 1
    assert [(w.isl, w.osl, w.conc, w.prompts_per_conc) for w in stage.workloads] == [(128, 64, (1, 2, 4), 10)]


def test_embedded_suite_loads_from_its_directory_and_plans():
    suite = load_suite(REPO / "suites" / "smollm2-cpu")
    points = plan_points(suite)
    assert [p.id for p in points] == ["smollm2-128-64-c1", "smollm2-128-64-c2", "smollm2-128-64-c4"]
    assert [p.num_prompts for p in points] == [10, 20, 40]
    assert [p.num_warmups for p in points] == [2, 4, 8]
    assert {(p.tp, p.tput_per_gpu_divisor, p.range_ratio, p.stage) for p in points} == {(1, 1, 1.0, "cpu")}


# --- a valid file ----------------------------------------------------------------------------


def test_base_suite_values_and_defaults(tmp_path):
    suite = load_text(tmp_path, BASE)
    assert suite.path == tmp_path / "suite.toml"
    assert suite.directory == tmp_path
    assert suite.suite.title == ""
    assert suite.suite.tokenizer is None
    assert suite.server.health_path == "/health"
    assert suite.server.host == "127.0.0.1"
    s2 = suite.stages["s2"]
    assert s2.range_ratio == 1.0  # default
    assert s2.tput_per_gpu_divisor == 8
    assert suite.stages["s1"].tput_per_gpu_divisor == "tp"


def test_missing_file(tmp_path):
    with pytest.raises(SuiteError, match="suite file not found") as exc:
        load_suite(tmp_path / "nope.toml")
    assert str(tmp_path / "nope.toml") in str(exc.value)
    with pytest.raises(SuiteError, match="suite file not found") as exc:
        load_suite(tmp_path)  # a directory without suite.toml
    assert str(tmp_path / "suite.toml") in str(exc.value)


# --- clear errors ----------------------------------------------------------------------------


def test_unknown_key_in_suite_table(tmp_path):
    msg = suite_error(tmp_path, BASE.replace('engine = "vllm"', 'engine = "vllm"\ntensor_paralel = 8'))
    assert "[suite.tensor_paralel]" in msg
    assert "Extra inputs are not permitted" in msg


def test_unknown_key_in_a_workload(tmp_path):
    msg = suite_error(tmp_path, BASE.replace("prompts_per_conc = 5", "prompt_per_conc = 5"))
    assert "stages.s1.workloads.1.prompt_per_conc" in msg
    assert "stages.s1.workloads.1.prompts_per_conc" in msg  # and the one now missing
    assert "Extra inputs are not permitted" in msg


def test_unknown_top_level_table(tmp_path):
    msg = suite_error(tmp_path, BASE + "\n[stage.s3]\ntitle = 'x'\n")
    assert "[stage]" in msg and "Extra inputs are not permitted" in msg


def test_unknown_key_in_a_stage(tmp_path):
    msg = suite_error(tmp_path, BASE.replace("warmups_per_conc = 0", "warmup_per_conc = 0"))
    assert "[stages.s2.warmup_per_conc]" in msg


def test_missing_required_key(tmp_path):
    msg = suite_error(tmp_path, BASE.replace('model = "org/demo-model"\n', ""))
    assert "[suite.model] Field required" in msg


def test_missing_required_table(tmp_path):
    text = BASE.split("[server]")[0] + BASE.split("--tensor-parallel-size\", \"${tp}\"]\n")[1]
    msg = suite_error(tmp_path, text)
    assert "[server] Field required" in msg


def test_bad_toml(tmp_path):
    msg = suite_error(tmp_path, BASE.replace('name = "demo"', 'name = "demo'))
    assert "not valid TOML" in msg


def test_default_stage_not_among_stages(tmp_path):
    msg = suite_error(tmp_path, BASE.replace('default_stage = "s1"', 'default_stage = "s9"'))
    assert "default_stage 's9' is not one of the stages ['s1', 's2']" in msg


@pytest.mark.parametrize("conc", ["[]", "[0, 4]", "[4, -1]"])
def test_conc_list_empty_or_not_positive(tmp_path, conc):
    msg = suite_error(tmp_path, BASE.replace("conc = [16]", f"conc = {conc}"))
    assert "[stages.s1.workloads.1.conc]" in msg
    assert "conc must be a non-empty list of positive integers" in msg


@pytest.mark.parametrize("field, bad", [
    ("isl", "isl = 0, osl = 8192, conc = [1, 2], prompts_per_conc = 3"),
    ("osl", "isl = 1024, osl = -1, conc = [1, 2], prompts_per_conc = 3"),
    ("prompts_per_conc", "isl = 1024, osl = 8192, conc = [1, 2], prompts_per_conc = 0"),
])
def test_workload_sizes_must_be_positive(tmp_path, field, bad):
    text = BASE.replace("isl = 1024, osl = 8192, conc = [1, 2], prompts_per_conc = 3", bad)
    assert text != BASE
    msg = suite_error(tmp_path, text)
    assert f"[stages.s2.workloads.0.{field}]" in msg
    assert "greater than 0" in msg


@pytest.mark.parametrize("ratio", ["1.5", "-0.1"])
def test_range_ratio_bounds(tmp_path, ratio):
    msg = suite_error(tmp_path, BASE.replace("range_ratio = 0.8", f"range_ratio = {ratio}"))
    assert "[stages.s1.range_ratio]" in msg


def test_bad_engine(tmp_path):
    msg = suite_error(tmp_path, BASE.replace('engine = "vllm"', 'engine = "vlm"'))
    assert "[suite.engine]" in msg and "'vllm'" in msg


def test_suite_name_may_not_hold_a_dash(tmp_path):
    # The name starts every point id (name-isl-osl-cN); a dash would make ids ambiguous.
    msg = suite_error(tmp_path, BASE.replace('name = "demo"', 'name = "my-demo"'))
    assert "[suite.name]" in msg


def test_bad_divisor_word(tmp_path):
    msg = suite_error(tmp_path, BASE.replace('tput_per_gpu_divisor = "tp"', 'tput_per_gpu_divisor = "gpus"'))
    assert "stages.s1.tput_per_gpu_divisor" in msg


@pytest.mark.parametrize("divisor", ["0", "-8"])
def test_divisor_must_be_positive(tmp_path, divisor):
    # tput_per_gpu = total_token_throughput / divisor: 0 would raise ZeroDivisionError in
    # compute_metrics after the whole point has run, and a negative one gives a negative figure.
    msg = suite_error(tmp_path, BASE.replace("tput_per_gpu_divisor = 8", f"tput_per_gpu_divisor = {divisor}"))
    assert "stages.s2.tput_per_gpu_divisor" in msg


def test_unknown_stage_asked_for(tmp_path):
    suite = load_text(tmp_path, BASE)
    with pytest.raises(SuiteError) as exc:
        suite.stage("s3")
    msg = str(exc.value)
    assert str(tmp_path / "suite.toml") in msg
    assert "no stage 's3'" in msg and "['s1', 's2']" in msg and "--stage" in msg
    with pytest.raises(SuiteError, match="no stage 's3'"):
        plan_points(suite, PlanOptions(stage="s3"))


# --- plan_points -----------------------------------------------------------------------------


def test_plan_default_stage(tmp_path):
    suite = load_text(tmp_path, BASE)
    points = plan_points(suite)
    assert [p.id for p in points] == ["demo-1024-1024-c4", "demo-1024-1024-c8", "demo-8192-1024-c16"]
    # NUM_PROMPTS = CONC x prompts_per_conc; warmups = warmups_per_conc x CONC
    assert [p.num_prompts for p in points] == [4 * 10, 8 * 10, 16 * 5]
    assert [p.num_warmups for p in points] == [2 * 4, 2 * 8, 2 * 16]
    assert points[0] == Point(suite="demo", stage="s1", isl=1024, osl=1024, conc=4, num_prompts=40,
                              num_warmups=8, range_ratio=0.8, tp=4, tput_per_gpu_divisor=4,
                              num_prompts_overridden=False)


def test_plan_other_stage(tmp_path):
    points = plan_points(load_text(tmp_path, BASE), PlanOptions(stage="s2"))
    assert [p.id for p in points] == ["demo-1024-8192-c1", "demo-1024-8192-c2"]
    assert [p.num_prompts for p in points] == [3, 6]
    assert [p.num_warmups for p in points] == [0, 0]
    assert all(p.stage == "s2" and p.range_ratio == 1.0 for p in points)


def test_conc_override_replaces_every_workloads_list(tmp_path):
    points = plan_points(load_text(tmp_path, BASE), PlanOptions(conc=(2, 32)))
    assert [p.id for p in points] == ["demo-1024-1024-c2", "demo-1024-1024-c32",
                                      "demo-8192-1024-c2", "demo-8192-1024-c32"]
    assert [p.num_prompts for p in points] == [20, 320, 10, 160]
    assert [p.num_warmups for p in points] == [4, 64, 4, 64]


def test_num_prompts_override(tmp_path):
    points = plan_points(load_text(tmp_path, BASE), PlanOptions(num_prompts=7))
    assert [p.num_prompts for p in points] == [7, 7, 7]
    assert all(p.num_prompts_overridden for p in points)
    assert [p.num_warmups for p in points] == [8, 16, 32]  # warmups still follow CONC
    assert not any(p.num_prompts_overridden for p in plan_points(load_text(tmp_path, BASE)))


def test_divisor_tp_follows_num_gpus(tmp_path):
    suite = load_text(tmp_path, BASE)
    assert {(p.tp, p.tput_per_gpu_divisor) for p in plan_points(suite)} == {(4, 4)}
    assert {(p.tp, p.tput_per_gpu_divisor) for p in plan_points(suite, PlanOptions(num_gpus=2))} == {(2, 2)}


def test_fixed_divisor_ignores_num_gpus(tmp_path):
    suite = load_text(tmp_path, BASE)
    points = plan_points(suite, PlanOptions(stage="s2", num_gpus=2))
    assert {(p.tp, p.tput_per_gpu_divisor) for p in points} == {(2, 8)}


def test_duplicated_point_in_a_conc_list(tmp_path):
    suite = load_text(tmp_path, BASE.replace("conc = [4, 8]", "conc = [4, 8, 4]"))
    with pytest.raises(SuiteError) as exc:
        plan_points(suite)
    assert str(exc.value) == f"{tmp_path / 'suite.toml'}: stage 's1' lists demo-1024-1024-c4 twice"


def test_duplicated_point_across_workloads(tmp_path):
    suite = load_text(tmp_path, BASE.replace("{ isl = 8192, osl = 1024, conc = [16]",
                                             "{ isl = 1024, osl = 1024, conc = [8]"))
    with pytest.raises(SuiteError, match="lists demo-1024-1024-c8 twice"):
        plan_points(suite)


def test_conc_override_can_create_duplicates(tmp_path):
    suite = load_text(tmp_path, BASE.replace("{ isl = 8192, osl = 1024, conc = [16]",
                                             "{ isl = 1024, osl = 1024, conc = [16]"))
    assert len(plan_points(suite)) == 3  # 4, 8 and 16: distinct
    with pytest.raises(SuiteError, match="lists demo-1024-1024-c2 twice"):
        plan_points(suite, PlanOptions(conc=(2,)))


def test_point_id_selects_with_k():
    p = Point("gptoss", "s1", 1024, 8192, 16, 160, 32, 1.0, 8, 8)
    assert p.id == "gptoss-1024-8192-c16"
    assert not p.num_prompts_overridden


# --- the shipped suites keep the bounty runner's semantics ----------------------------------------


@pytest.mark.parametrize("suite_dir", ["gptoss", "dsr1"])
def test_stage1_sends_no_warmups_and_stage2_sends_two_per_conc(suite_dir):
    """Stage 1's perf command had no --num-warmups (bench_serving's default: 0); stage 2's has 2 x CONC."""
    suite = load_suite(REPO / "suites" / suite_dir)
    s1, s2 = plan_points(suite, PlanOptions(stage="s1")), plan_points(suite, PlanOptions(stage="s2"))
    assert s1 and all(p.num_warmups == 0 for p in s1)
    assert s2 and all(p.num_warmups == 2 * p.conc for p in s2)


@pytest.mark.parametrize("stage, expected", [
    ("s1", {"gptoss-1024-1024-c4": "1 initial test request, 0 warmups, client kimbochen/bench_serving@499c0b1, "
                                   "prompts as 499c0b1 (one re-encode, truncated to the target"}),
    ("s2", {"gptoss-8192-1024-c32": "2×CONC warmups (64), client kimbochen/bench_serving@ee86723, "
                                    "prompts as ee86723 (up to 10 re-encodes, padded from the global np.random"})])
def test_collect_only_plan_shows_the_stage_client(pytester, stage, expected):
    result = pytester.runpytest_inprocess(str(REPO / "suites" / "gptoss"), "--collect-only", "--stage", stage,
                                          "-p", "no:cacheprovider", "-k", "1024-1024-c4 or c32")
    shown = {line.split(":")[0].strip(): line.split("requests after ")[1]
             for line in result.stdout.lines if "requests after" in line}
    assert shown.keys() == expected.keys(), result.stdout.str()
    assert all(shown[k].startswith(v) for k, v in expected.items()), result.stdout.str()


# --- each stage's client version, as data ---------------------------------------------------------


@pytest.mark.parametrize("suite_dir", ["gptoss", "dsr1"])
def test_stage1_mirrors_499c0b1_and_stage2_ee86723(suite_dir):
    suite = load_suite(REPO / "suites" / suite_dir)
    s1, s2 = suite.stages["s1"].client, suite.stages["s2"].client
    assert (s1.source, s1.initial_test_request, s1.warmups_per_conc, s1.prompt_builder) == (
        "kimbochen/bench_serving@499c0b1", True, 0, "499c0b1")
    assert (s2.source, s2.initial_test_request, s2.warmups_per_conc, s2.prompt_builder) == (
        "kimbochen/bench_serving@ee86723", False, 2, "ee86723")
    assert {p.client for p in plan_points(suite, PlanOptions(stage="s1"))} == {s1}  # every point carries it


def test_the_embedded_suite_mirrors_the_client_a_fresh_clone_gives():
    client = load_suite(REPO / "suites" / "smollm2-cpu").stages["cpu"].client
    assert (client.source, client.initial_test_request, client.warmups_per_conc, client.prompt_builder) == (
        "kimbochen/bench_serving@ee86723", False, 2, "ee86723")


CLIENT_S2 = """
[stages.s2.client]
source = "kimbochen/bench_serving@499c0b1"
initial_test_request = true
prompt_builder = "499c0b1"
"""


def test_client_table_sets_the_points_warmups_and_initial_request(tmp_path):
    suite = load_text(tmp_path, BASE.replace("warmups_per_conc = 0\n", "") + CLIENT_S2 + "warmups_per_conc = 1\n")
    points = plan_points(suite, PlanOptions(stage="s2"))
    assert [p.num_warmups for p in points] == [1, 2]
    assert all(p.client.initial_test_request and p.client.prompt_builder == "499c0b1" for p in points)
    assert points[0].client.before_timed(2) == "1 initial test request, 1×CONC warmups (2)"


def test_without_a_client_table_a_stage_mirrors_ee86723_and_keeps_its_old_warmups_key(tmp_path):
    suite = load_text(tmp_path, BASE)  # warmups_per_conc on the stage: the spelling before the client table
    s1, s2 = suite.stages["s1"].client, suite.stages["s2"].client
    assert (s1.warmups_per_conc, s2.warmups_per_conc) == (2, 0)
    assert (s1.source, s1.initial_test_request, s1.prompt_builder) == ("kimbochen/bench_serving@ee86723", False,
                                                                       "ee86723")
    assert [p.num_warmups for p in plan_points(suite)] == [8, 16, 32]
    # the old key beside a client table without it: taken into the table
    suite = load_text(tmp_path, BASE + CLIENT_S2)
    assert suite.stages["s2"].client.warmups_per_conc == 0 and suite.stages["s2"].client.initial_test_request


def test_warmups_in_both_places_is_an_error(tmp_path):
    msg = suite_error(tmp_path, BASE + CLIENT_S2 + "warmups_per_conc = 2\n")
    assert "[stages.s2]" in msg and "warmups_per_conc is given both on the stage and in its client table" in msg


@pytest.mark.parametrize("line, where, what", [
    ('prompt_builder = "2ddd364"', "stages.s2.client.prompt_builder", "Input should be '499c0b1' or 'ee86723'"),
    ('initial_test_requests = true', "stages.s2.client.initial_test_requests", "Extra inputs are not permitted"),
    ('source = "bench_serving"', "stages.s2.client.source", "String should match pattern"),
    ("warmups_per_conc = -1", "stages.s2.client.warmups_per_conc", "greater than or equal to 0"),
    ('initial_test_request = "maybe"', "stages.s2.client.initial_test_request", "valid boolean"),
])
def test_a_bad_client_table_names_the_key(tmp_path, line, where, what):
    text = BASE.replace("warmups_per_conc = 0\n", "") + "\n[stages.s2.client]\n" + line + "\n"
    msg = suite_error(tmp_path, text)
    assert f"[{where}]" in msg and what in msg, msg

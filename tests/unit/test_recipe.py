"""Server recipes rendered per point: placeholders, rules, stage overrides and sharing."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pytest_inferencemax.plan.points import PlanOptions, plan_points
from pytest_inferencemax.plan.recipe import RecipeContext, render_recipe, resolve_model, variables
from pytest_inferencemax.plan.suite import SuiteError, load_suite

SUITE = """\
[suite]
name = "demo"
model = "${models_dir}/Demo-Model"
engine = "sglang"
tp = 8
default_stage = "s1"

[server]
argv = [
  "${python}", "-m", "sglang.launch_server", "--model-path", "${model}",
  "--served-model-name", "${served_model_name}", "--tp", "${tp}",
  "--host", "${host}", "--port=${port}",
  "--chunked-prefill-size", "${prefill}", "--config", "${files_dir}/cfg.yaml",
  "--price", "$$5",
]
env = { SGL_MODE = "${mode}", SERVE_ADDR = "${host}:${port}" }
vars = { prefill = 16384, mode = "plain" }
health_path = "/healthz"
when = [
  { match = { isl = 8192 }, vars = { prefill = 32768 } },
  { match = { osl = 8192, conc_above = 32 }, vars = { mode = "big" } },
]

[server.files]
"cfg.yaml" = "tp: ${tp}\\n"

[stages.s1]
workloads = [
  { isl = 1024, osl = 1024, conc = [4, 64], prompts_per_conc = 10 },
  { isl = 1024, osl = 8192, conc = [4, 32, 64], prompts_per_conc = 10 },
  { isl = 8192, osl = 1024, conc = [4], prompts_per_conc = 10 },
]

[stages.s2]
workloads = [
  { isl = 1024, osl = 1024, conc = [4], prompts_per_conc = 10 },
]

[stages.s2.server]
args_add = ["--enable-dp-attention", "--dp", "${tp}"]
env_add = { EXTRA = "on-${conc}", SGL_MODE = "override" }

[stages.s3]
workloads = [
  { isl = 1024, osl = 1024, conc = [4], prompts_per_conc = 10 },
]

[stages.s3.server]
argv = ["serve", "${model}", "--port", "${port}"]
vars = { prefill = 1 }
when = []
"""


@pytest.fixture
def suite(tmp_path):
    d = tmp_path / "suites" / "demo"
    d.mkdir(parents=True)
    (d / "suite.toml").write_text(SUITE, encoding="utf-8")
    return load_suite(d)


@pytest.fixture
def ctx(tmp_path):
    return RecipeContext(model="/models/Demo-Model", served_model_name="demo", tokenizer="/tok",
                         files_dir=tmp_path / "files", models_dir=tmp_path / "models", host="127.0.0.1",
                         python="/venv/bin/python")


def after(argv, flag):
    """The argument that follows ``flag``."""
    return argv[list(argv).index(flag) + 1]


def points_by_id(suite, stage=None):
    return {p.id: p for p in plan_points(suite, PlanOptions(stage=stage))}


def recipe_for(suite, ctx, point_id, stage=None):
    return render_recipe(suite, points_by_id(suite, stage)[point_id], ctx)


def test_placeholders_fill_and_port_stays_open(suite, ctx):
    r = recipe_for(suite, ctx, "demo-1024-1024-c4")
    assert r.argv == (
        "/venv/bin/python", "-m", "sglang.launch_server", "--model-path", "/models/Demo-Model",
        "--served-model-name", "demo", "--tp", "8",
        "--host", "127.0.0.1", "--port=${port}",
        "--chunked-prefill-size", "16384", "--config", f"{ctx.files_dir}/cfg.yaml",
        "--price", "$5",  # $$ is a literal $
    )
    assert r.env == (("SERVE_ADDR", "127.0.0.1:${port}"), ("SGL_MODE", "plain"))
    assert r.suite == "demo" and r.engine == "sglang"
    assert r.health_path == "/healthz" and r.host == "127.0.0.1"
    assert r.files_dir == ctx.files_dir


def test_command_and_environment_fill_the_port(suite, ctx):
    r = recipe_for(suite, ctx, "demo-1024-1024-c4")
    cmd = r.command(8123)
    assert cmd[11] == "--port=8123"
    assert not any("${port}" in a for a in cmd)
    assert cmd == [a.replace("${port}", "8123") for a in r.argv]
    assert r.environment(8123) == {"SERVE_ADDR": "127.0.0.1:8123", "SGL_MODE": "plain"}
    assert r.argv[11] == "--port=${port}"  # the recipe itself is unchanged
    # The key does not depend on the port chosen.
    assert r.key == recipe_for(suite, ctx, "demo-1024-1024-c4").key


def test_files_are_written_verbatim(suite, ctx):
    r = recipe_for(suite, ctx, "demo-1024-1024-c4")
    assert r.files == (("cfg.yaml", "tp: ${tp}\n"),)
    r.write_files()
    assert (ctx.files_dir / "cfg.yaml").read_text() == "tp: ${tp}\n"


def test_default_python_is_this_interpreter(tmp_path):
    c = RecipeContext(model="m", served_model_name="m", tokenizer="m", files_dir=tmp_path, models_dir=tmp_path,
                      host="h")
    assert c.python == sys.executable


def test_variables_list_every_builtin(suite, ctx):
    p = points_by_id(suite)["demo-1024-8192-c64"]
    v = variables(suite, p, ctx)
    assert v == {
        "prefill": "16384", "mode": "big",
        "model": "/models/Demo-Model", "served_model_name": "demo", "tokenizer": "/tok",
        "tp": "8", "isl": "1024", "osl": "8192", "conc": "64", "host": "127.0.0.1", "port": "${port}",
        "python": "/venv/bin/python", "files_dir": str(ctx.files_dir), "models_dir": str(ctx.models_dir),
        "suite_dir": str(suite.directory),
    }


def test_unknown_placeholder_names_it(tmp_path, ctx):
    text = SUITE.replace('"--price", "$$5"', '"--price", "${prce}"')
    (tmp_path / "suite.toml").write_text(text)
    suite = load_suite(tmp_path / "suite.toml")
    with pytest.raises(SuiteError) as exc:
        render_recipe(suite, plan_points(suite)[0], ctx)
    msg = str(exc.value)
    assert "unknown placeholder ${prce}" in msg
    assert str(tmp_path / "suite.toml") in msg and "[server]" in msg
    assert "prefill" in msg and "model" in msg  # lists what is known


def test_unknown_placeholder_in_env(tmp_path, ctx):
    text = SUITE.replace('SGL_MODE = "${mode}"', 'SGL_MODE = "${nope}"')
    (tmp_path / "suite.toml").write_text(text)
    suite = load_suite(tmp_path / "suite.toml")
    with pytest.raises(SuiteError, match=r"unknown placeholder \$\{nope\}"):
        render_recipe(suite, plan_points(suite)[0], ctx)


def test_bad_placeholder_syntax(tmp_path, ctx):
    text = SUITE.replace('"--price", "$$5"', '"--price", "$5"')
    (tmp_path / "suite.toml").write_text(text)
    suite = load_suite(tmp_path / "suite.toml")
    with pytest.raises(SuiteError, match=r"bad placeholder .*write \$\$ for a literal \$"):
        render_recipe(suite, plan_points(suite)[0], ctx)


def test_empty_argv_is_an_error(tmp_path, ctx):
    text = SUITE.split("[server]")[0] + "[server]\n" + SUITE.split("[server.files]")[1].replace(
        '"cfg.yaml" = "tp: ${tp}\\n"\n', "", 1)
    (tmp_path / "suite.toml").write_text(text)
    suite = load_suite(tmp_path / "suite.toml")
    assert suite.server.argv == ()
    with pytest.raises(SuiteError, match=r"\[server\] argv is empty.*--server-url"):
        render_recipe(suite, plan_points(suite)[0], ctx)


# --- when rules ------------------------------------------------------------------------------


def test_isl_rule_changes_the_var_only_for_matching_points(suite, ctx):
    prefill = {pid: after(recipe_for(suite, ctx, pid).argv, "--chunked-prefill-size") for pid in points_by_id(suite)}
    assert prefill == {
        "demo-1024-1024-c4": "16384", "demo-1024-1024-c64": "16384",
        "demo-1024-8192-c4": "16384", "demo-1024-8192-c32": "16384", "demo-1024-8192-c64": "16384",
        "demo-8192-1024-c4": "32768",
    }


def test_osl_and_conc_above_rule_needs_both(suite, ctx):
    mode = {pid: dict(recipe_for(suite, ctx, pid).env)["SGL_MODE"] for pid in points_by_id(suite)}
    # osl 8192 and conc > 32: only c64 of the 1024/8192 workload (c32 is not above 32;
    # the 1024/1024 c64 has the wrong osl).
    assert mode == {
        "demo-1024-1024-c4": "plain", "demo-1024-1024-c64": "plain",
        "demo-1024-8192-c4": "plain", "demo-1024-8192-c32": "plain", "demo-1024-8192-c64": "big",
        "demo-8192-1024-c4": "plain",
    }


def test_match_conc_and_conc_below(tmp_path, ctx):
    text = SUITE.replace(
        'when = [\n', 'when = [\n  { match = { conc = 4 }, vars = { mode = "four" } },\n'
                     '  { match = { conc_below = 40, osl = 8192 }, vars = { prefill = 1 } },\n')
    (tmp_path / "suite.toml").write_text(text)
    suite = load_suite(tmp_path / "suite.toml")
    got = {p.id: (dict(render_recipe(suite, p, ctx).env)["SGL_MODE"], after(render_recipe(suite, p, ctx).argv, "--chunked-prefill-size"))
           for p in plan_points(suite)}
    # Later rules win: the isl = 8192 rule comes after, so it sets prefill for 8192/1024.
    assert got == {
        "demo-1024-1024-c4": ("four", "16384"), "demo-1024-1024-c64": ("plain", "16384"),
        "demo-1024-8192-c4": ("four", "1"), "demo-1024-8192-c32": ("plain", "1"),
        "demo-1024-8192-c64": ("big", "16384"),
        "demo-8192-1024-c4": ("four", "32768"),
    }


# --- sharing ---------------------------------------------------------------------------------


def test_equal_recipes_share_a_key_and_different_ones_do_not(suite, ctx):
    keys = {pid: recipe_for(suite, ctx, pid).key for pid in points_by_id(suite)}
    # The recipe uses neither ${isl}, ${osl} nor ${conc}: only the rules set points apart.
    assert keys["demo-1024-1024-c4"] == keys["demo-1024-1024-c64"] == keys["demo-1024-8192-c4"] \
        == keys["demo-1024-8192-c32"]
    assert keys["demo-1024-8192-c64"] != keys["demo-1024-1024-c4"]  # mode = big
    assert keys["demo-8192-1024-c4"] != keys["demo-1024-1024-c4"]  # prefill = 32768
    assert keys["demo-8192-1024-c4"] != keys["demo-1024-8192-c64"]
    assert len(set(keys.values())) == 3
    assert all(k.startswith("r2-") and len(k) == 15 and int(k[3:], 16) >= 0 for k in keys.values())


def test_key_changes_with_the_files(tmp_path, ctx):
    a = tmp_path / "a"
    b = tmp_path / "b"
    for d, content in ((a, "tp: ${tp}\\n"), (b, "tp: 4\\n")):
        d.mkdir()
        (d / "suite.toml").write_text(SUITE.replace('"cfg.yaml" = "tp: ${tp}\\n"', f'"cfg.yaml" = "{content}"'))
    sa, sb = load_suite(a), load_suite(b)
    ra = render_recipe(sa, plan_points(sa)[0], ctx)
    rb = render_recipe(sb, plan_points(sb)[0], ctx)
    assert ra.argv == rb.argv and ra.env == rb.env
    assert ra.files != rb.files
    assert ra.key != rb.key


def test_key_changes_with_the_context_model(suite, ctx):
    p = plan_points(suite)[0]
    other = RecipeContext(model="/models/Other", served_model_name="demo", tokenizer="/tok",
                          files_dir=ctx.files_dir, models_dir=ctx.models_dir, host="127.0.0.1",
                          python="/venv/bin/python")
    assert render_recipe(suite, p, ctx).key != render_recipe(suite, p, other).key


# --- stage overrides -------------------------------------------------------------------------


def test_stage_args_add_and_env_add(suite, ctx):
    base = recipe_for(suite, ctx, "demo-1024-1024-c4")
    s2 = recipe_for(suite, ctx, "demo-1024-1024-c4", stage="s2")
    assert s2.argv == base.argv + ("--enable-dp-attention", "--dp", "8")
    assert dict(s2.env) == {"SERVE_ADDR": "127.0.0.1:${port}", "SGL_MODE": "override", "EXTRA": "on-4"}
    assert s2.env == tuple(sorted(s2.env))
    assert s2.health_path == "/healthz"  # a stage cannot change it
    assert s2.key != base.key
    # The suite's own server is untouched by the stage's merge.
    assert "--enable-dp-attention" not in suite.server.argv
    assert "EXTRA" not in suite.server.env


def test_stage_replaces_argv_vars_and_rules(suite, ctx):
    p = points_by_id(suite, "s3")["demo-1024-1024-c4"]
    v = variables(suite, p, ctx)
    # vars are replaced wholesale, not merged: "mode" is gone and prefill is the stage's.
    assert v["prefill"] == "1" and "mode" not in v
    # So the suite's env, which the stage keeps and which uses ${mode}, no longer renders.
    with pytest.raises(SuiteError, match=r"unknown placeholder \$\{mode\}"):
        render_recipe(suite, p, ctx)


def test_stage_replaces_argv(tmp_path, ctx):
    text = SUITE.replace('vars = { prefill = 1 }\nwhen = []\n', 'vars = { prefill = 1 }\nwhen = []\nenv = {}\n')
    assert text != SUITE
    (tmp_path / "suite.toml").write_text(text)
    suite = load_suite(tmp_path / "suite.toml")
    r = render_recipe(suite, plan_points(suite, PlanOptions(stage="s3"))[0], ctx)
    assert r.argv == ("serve", "/models/Demo-Model", "--port", "${port}")
    assert r.env == ()
    assert r.command(9000) == ["serve", "/models/Demo-Model", "--port", "9000"]


def test_stage_override_keeps_what_it_does_not_set(tmp_path, ctx):
    text = SUITE.replace('[stages.s3.server]\nargv = ["serve", "${model}", "--port", "${port}"]\n'
                         'vars = { prefill = 1 }\nwhen = []\n', '[stages.s3.server]\nvars = { prefill = 1, mode = "m" }\n')
    (tmp_path / "suite.toml").write_text(text)
    suite = load_suite(tmp_path / "suite.toml")
    p = plan_points(suite, PlanOptions(stage="s3"))[0]
    r = render_recipe(suite, p, ctx)
    assert after(r.argv, "--chunked-prefill-size") == "1"  # var replaced
    assert dict(r.env)["SGL_MODE"] == "m"
    assert r.health_path == "/healthz"  # not set by the stage: the suite's
    assert r.files == (("cfg.yaml", "tp: ${tp}\n"),)


# --- resolve_model ---------------------------------------------------------------------------


def test_resolve_model(suite, tmp_path):
    assert resolve_model(suite, Path("/m"), None) == "/m/Demo-Model"
    assert resolve_model(suite, Path("/m"), "org/other") == "org/other"
    assert resolve_model(suite, Path("/m"), "${suite_dir}/w") == f"{suite.directory}/w"


def test_resolve_model_unknown_placeholder(tmp_path):
    (tmp_path / "suite.toml").write_text(SUITE.replace('model = "${models_dir}/Demo-Model"', 'model = "${root}/x"'))
    suite = load_suite(tmp_path / "suite.toml")
    with pytest.raises(SuiteError, match=r"\[suite\]\.model: unknown placeholder \$\{root\}"):
        resolve_model(suite, tmp_path, None)

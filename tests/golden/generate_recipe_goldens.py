"""Regenerate tests/golden/recipes/*.json by running the bounty's launch scripts for real.

Authoring-time tool, never run by the test suite (see tests/golden/regenerate.md). For every
point our suites plan, it extracts the original launch script from a git mirror of
danielhua23/amdgpu_inferencemax_bounty, runs it with bash under a controlled environment in
which ``vllm`` and ``python3`` are fakes that record their argv, the environment variables the
script set, and the content of the ``--config`` file, then exit 0. Nothing of the scripts is
stored in this repository: only what they produced.

Usage:  .venv/bin/python tests/golden/generate_recipe_goldens.py --mirror <path-to-git-dir>
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pytest_inferencemax.plan.points import PlanOptions, plan_points  # noqa: E402
from pytest_inferencemax.plan.suite import load_suite  # noqa: E402

SOURCE_REPO = "danielhua23/amdgpu_inferencemax_bounty"
PORT = "8888"  # placeholder port; the tests render our recipe with the same number
TP = "8"
CONFIG_PATH = "/tmp/vllm_config.yaml"  # hard-coded in the vLLM scripts
CONFIG_MAP = {CONFIG_PATH: "${files_dir}/vllm_config.yaml"}

# The stage-1 vLLM script's stray comment inside the backslash continuation; the line ends the
# command early. We do not reproduce that bug, so the golden comes from a copy without it.
STRAY_COMMENT = "# --max-seq-len-to-capture $MAX_MODEL_LEN \\ deprecated"

def _source(commit: str, folder: str, script: str, engine: str, per_point_inputs: bool,
            drop_line: str | None = None) -> dict:
    """One launch script of the bounty repo and the two variable scripts beside it."""
    return dict(commit=commit, script=f"{folder}/{script}",
                var_scripts=[f"{folder}/all_conc_var.sh", f"{folder}/specific_conc_var.sh"],
                engine=engine, per_point_inputs=per_point_inputs, drop_line=drop_line)


SOURCES = {
    ("gptoss", "s1"): _source("9f4fc0d", "gptoss-fp4-vllm-mi355x", "launch_vllm_server.sh", "vllm", False,
                              drop_line=STRAY_COMMENT),
    ("gptoss", "s2"): _source("56dc686", "gptoss-fp4-vllm-mi355x", "launch_vllm_server.sh", "vllm", False),
    ("dsr1", "s1"): _source("9f4fc0d", "dsr1-fp4-sglang-mi355x", "launch_sglang_server.sh", "python3", True),
    ("dsr1", "s2"): _source("56dc686", "dsr1-fp4-sglang-mtp-mi355x", "launch_sglang_server.sh", "python3", True),
}

FAKE = '''#!{python}
# Fake {name}: record argv, the whole environment and the --config file, then exit 0.
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
config = None
for i, a in enumerate(args):
    if a == "--config" and i + 1 < len(args):
        config = args[i + 1]
    elif a.startswith("--config="):
        config = a.split("=", 1)[1]
files = {{}}
if config and os.path.isfile(config):
    files[config] = Path(config).read_text(encoding="utf-8")
out = Path(__file__).resolve().parent.parent / "captures.jsonl"
with out.open("a", encoding="utf-8") as f:
    f.write(json.dumps({{"argv": [os.path.basename(sys.argv[0])] + args,
                        "env": dict(os.environ), "files": files}}) + "\\n")
'''


def git_show(mirror: Path, rev: str) -> bytes:
    return subprocess.run(["git", "-C", str(mirror), "show", rev], check=True, capture_output=True).stdout


def full_sha(mirror: Path, commit: str) -> str:
    return subprocess.run(["git", "-C", str(mirror), "rev-parse", commit], check=True,
                          capture_output=True, text=True).stdout.strip()


def var_script_model(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("export MODEL="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


class Runner:
    """Runs a script under bash with a fake bin dir and, where possible, a private /tmp."""

    def __init__(self, work: Path):
        self.work = work
        self.bin = work / "bin"
        self.bin.mkdir()
        for name in ("vllm", "python3"):
            p = self.bin / name
            p.write_text(FAKE.format(python=sys.executable, name=name), encoding="utf-8")
            p.chmod(0o755)
        self.path = f"{self.bin}:/usr/bin:/bin"
        if shutil.which("rocm-smi", path=self.path):
            sys.exit("rocm-smi is on PATH; the goldens record the script's behaviour without it")
        self.bash = shutil.which("bash", path="/usr/bin:/bin")
        self.private_tmp = shutil.which("unshare") is not None and subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True).returncode == 0

    def run(self, script: Path, inputs: dict[str, str]) -> tuple[list[dict], str]:
        captures = self.work / "captures.jsonl"
        captures.unlink(missing_ok=True)
        home = self.work / "home"
        home.mkdir(exist_ok=True)
        env = {"PATH": self.path, "HOME": str(home), "LANG": "C.UTF-8", **inputs}
        inner = [self.bash, str(script)]
        if self.private_tmp:  # the scripts write /tmp/vllm_config.yaml and mktemp logs: keep them private
            tmp = self.work / "tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            cmd = ["unshare", "--user", "--map-root-user", "--mount", self.bash, "-c",
                   'mount --bind "$0" /tmp && exec env -i "$@"', str(tmp),
                   *[f"{k}={v}" for k, v in env.items()], *inner]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        else:
            backup = Path(CONFIG_PATH).read_bytes() if Path(CONFIG_PATH).exists() else None
            try:
                proc = subprocess.run(inner, capture_output=True, text=True, env=env)
            finally:
                if backup is None:
                    Path(CONFIG_PATH).unlink(missing_ok=True)
                else:
                    Path(CONFIG_PATH).write_bytes(backup)
        if proc.returncode != 0:
            raise RuntimeError(f"{script} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        lines = captures.read_text(encoding="utf-8").splitlines() if captures.exists() else []
        return [json.loads(line) for line in lines], proc.stderr


def capture(runner: Runner, script: Path, engine: str, inputs: dict[str, str]) -> dict:
    """argv, the variables the script set (vs a baseline run), and the config file."""
    calls, _ = runner.run(script, inputs)
    if len(calls) != 1 or calls[0]["argv"][0] != engine:
        raise RuntimeError(f"{script}: expected one {engine} call, got {calls}")
    call = calls[0]
    baseline_script = runner.work / "baseline.sh"
    baseline_script.write_text(f"{engine} --baseline\n", encoding="utf-8")
    (base,), _ = runner.run(baseline_script, inputs)
    env = {k: v for k, v in sorted(call["env"].items()) if base["env"].get(k) != v}
    unset = sorted(set(base["env"]) - set(call["env"]))
    if unset:
        raise RuntimeError(f"{script} unset {unset}; the golden format has no place for that")
    return {"inputs": inputs, "argv": call["argv"], "env": env, "files": call["files"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, required=True, help="git dir of a mirror of " + SOURCE_REPO)
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "golden" / "recipes")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="recipe-goldens-", dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    try:
        runner = Runner(work)
        bash_version = subprocess.run([runner.bash, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        for (suite_name, stage), src in SOURCES.items():
            suite = load_suite(REPO / "suites" / suite_name)
            model = suite.stage(stage)[1].model or suite.suite.model
            sha = full_sha(args.mirror, src["commit"])
            original = git_show(args.mirror, f"{sha}:{src['script']}")
            text = original.decode("utf-8")
            modifications = []
            if src["drop_line"]:
                lines = text.split("\n")
                hits = [i for i, line in enumerate(lines) if line == src["drop_line"]]
                if len(hits) != 1:
                    raise RuntimeError(f"expected the stray comment line once in {src['script']}, found {len(hits)}")
                modifications.append(
                    f"line {hits[0] + 1} {src['drop_line']!r} removed: inside the backslash continuation it ends "
                    "the vllm command early (known bug, deliberately not reproduced by our suite)")
                text = "\n".join(lines[:hits[0]] + lines[hits[0] + 1:])
            script = work / f"{suite_name}-{stage}" / Path(src["script"]).name
            script.parent.mkdir()
            script.write_text(text, encoding="utf-8")
            bounty_models = {v: var_script_model(git_show(args.mirror, f"{sha}:{v}").decode("utf-8"))
                             for v in src["var_scripts"]}
            base_inputs = {"MODEL": model, "PORT": PORT, "TP": TP}
            if src["engine"] == "vllm":
                base_inputs["MAX_MODEL_LEN"] = "16384"
            points = {}
            for point in plan_points(suite, PlanOptions(stage=stage)):
                inputs = dict(base_inputs)
                if src["per_point_inputs"]:
                    inputs.update(ISL=str(point.isl), OSL=str(point.osl), CONC=str(point.conc))
                points[point.id] = capture(runner, script, src["engine"], inputs)
            unpatched = None
            if src["drop_line"]:
                orig = work / f"{suite_name}-{stage}" / "unpatched.sh"
                orig.write_bytes(original)
                calls, stderr = runner.run(orig, base_inputs)
                unpatched = {"argv": calls[0]["argv"] if calls else None,
                             "stderr_not_found": [line.replace(str(orig), Path(src["script"]).name)
                                                  for line in stderr.splitlines() if "not found" in line]}
            meta = {
                "suite": suite_name,
                "stage": stage,
                "source": {"repo": SOURCE_REPO, "commit": sha, "script": src["script"],
                           "script_sha256": hashlib.sha256(original).hexdigest(),
                           "var_scripts": src["var_scripts"]},
                "generated": dt.datetime.now(dt.timezone.utc).date().isoformat(),
                "generator": "tests/golden/generate_recipe_goldens.py (procedure: tests/golden/regenerate.md)",
                "how": (f"Ran the script with {bash_version.split(' (')[0]} under `env -i` (PATH = fake bin dir + "
                        "/usr/bin:/bin, HOME, LANG=C.UTF-8 and the inputs below"
                        + (", /tmp a private bind mount" if runner.private_tmp else "") + "). "
                        "Fake `vllm` and `python3` executables first on PATH recorded argv (argv[0] as its "
                        "basename), the environment and the --config file's content, and exited 0. `env` is "
                        "every variable whose value differs from a baseline run of a one-line script calling "
                        "the same fake with the same inputs, i.e. exactly what the script set/exported. "
                        "No rocm-smi and no ROCR_VISIBLE_DEVICES were present."),
                "inputs": base_inputs,
                "inputs_per_point": ["ISL", "OSL", "CONC"] if src["per_point_inputs"] else [],
                "model_note": (f"MODEL is our suite's model {model!r}; the bounty's var scripts at this commit set "
                               f"{sorted(set(bounty_models.values()))}"),
                "bounty_var_script_models": bounty_models,
                "modifications": modifications,
                "path_map": CONFIG_MAP if src["engine"] == "vllm" else {},
            }
            if unpatched:
                meta["unpatched_script_behaviour"] = unpatched
            if src["engine"] == "vllm":
                meta["notes"] = ["The stage-2 script exports HSA_NO_SCRATCH_RECLAIM=1 only when rocm-smi exists and "
                                 "reports MEC firmware < 177 (or none); recorded here without rocm-smi."] \
                    if stage == "s2" else []
            out = args.out / f"{suite_name}-{stage}.json"
            out.write_text(json.dumps({"metadata": meta, "points": points}, indent=2) + "\n", encoding="utf-8")
            print(f"{out.relative_to(REPO)}: {len(points)} points")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

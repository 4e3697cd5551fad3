"""Where relative paths resolve (issue 25, item 4), and what a missing model or tokenizer folder says.

A command-line value resolves against the working directory, an ini value (or ``-o``) against the ini file's
folder as pytest's own ``paths`` ini settings do, a built-in default against pytest's rootdir; the settings hold
absolute paths. A tokenizer folder that is not there is one line naming the folder and how its path came about,
before any server starts (exit code 4), never a huggingface_hub traceback.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_inferencemax.errors import ConfigError
from pytest_inferencemax.measure import tokenizer as lean
from pytest_inferencemax.measure.workload import load_tokenizer
from pytest_inferencemax.plugin.options import Settings
from pytest_inferencemax.plugin.catalog import SuiteCatalog
from pytest_inferencemax.serve.server import ServerPool

from e2e_support import REPO

INI_FILES = {
    "pytest.ini": "[pytest]\n{lines}\n",
    "pyproject.toml": "[tool.pytest.ini_options]\n{lines}\n",
}


def _ini(folder: Path, name: str, **values: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    quote = (lambda v: f'"{v}"') if name == "pyproject.toml" else (lambda v: v)
    lines = "\n".join(f"inferencemax_{k} = {quote(v)}" for k, v in values.items())
    path = folder / name
    path.write_text(INI_FILES[name].format(lines=lines))
    return path


def settings_in(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, cwd: Path, *args: str) -> Settings:
    """The settings of a pytest started in ``cwd`` with ``args`` (a --rootdir folder made)."""
    cwd.mkdir(parents=True, exist_ok=True)
    if "--rootdir" in args:
        Path(args[args.index("--rootdir") + 1]).mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    return Settings.from_config(pytester.parseconfig(*args))


# --- the three rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("ini_name", sorted(INI_FILES))
def test_an_ini_value_resolves_against_the_ini_files_folder(pytester, monkeypatch, ini_name):
    proj = pytester.path / "proj"
    ini = _ini(proj / "conf", ini_name, models_dir="models", results_dir="../out")
    # the rootdir and the working directory are elsewhere: neither matters for an ini value
    s = settings_in(pytester, monkeypatch, proj / "sub", "-c", str(ini), "--rootdir", str(proj / "root"))
    assert s.models_dir == proj / "conf" / "models"
    assert s.results_dir == proj / "out"  # ".." folded
    assert f"inferencemax_models_dir = models in {ini}" in s.path_origins["models-dir"]


def test_an_ini_override_on_the_command_line_resolves_as_pytest_resolves_its_paths_ini_settings(pytester, monkeypatch):
    proj = pytester.path / "proj"
    ini = _ini(proj, "pytest.ini", seed="1")
    s = settings_in(pytester, monkeypatch, proj / "sub", "-c", str(ini), "--rootdir", str(proj / "root"),
                    "-o", "inferencemax_models_dir=m")
    assert s.models_dir == proj / "m"  # pytest: `paths` ini values, -o included, are relative to the ini file
    assert s.path_origins["models-dir"] == f"-o inferencemax_models_dir=m, under {proj}"


def test_a_command_line_value_resolves_against_the_working_directory(pytester, monkeypatch):
    proj = pytester.path / "proj"
    _ini(proj, "pyproject.toml", models_dir=".cache/models", results_dir="results")
    s = settings_in(pytester, monkeypatch, proj / "sub", "--models-dir", "m", "--results-dir", "../r")
    assert s.models_dir == proj / "sub" / "m"
    assert s.results_dir == proj / "r"
    assert s.path_origins["models-dir"] == f"--models-dir m on the command line, under the working directory {proj / 'sub'}"


def test_the_default_resolves_against_the_rootdir_and_says_so(pytester, monkeypatch):
    proj = pytester.path / "proj"
    s = settings_in(pytester, monkeypatch, proj / "sub", "--rootdir", str(proj / "root"))
    assert s.models_dir == proj / "root" / ".cache" / "models"
    assert s.results_dir == proj / "root" / "results"
    assert s.path_origins["models-dir"].startswith(f"the default .cache/models under pytest's rootdir {proj / 'root'}")


def test_settings_hold_absolute_paths(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    s = settings_in(pytester, monkeypatch, pytester.path / "cwd", "--models-dir", "~/models",
                    "--results-dir", str(tmp_path / "a" / ".." / "b"))
    assert s.models_dir == tmp_path / "home" / "models"
    assert s.results_dir == tmp_path / "b"
    assert s.path_origins["results-dir"] == f"--results-dir {tmp_path / 'a' / '..' / 'b'} on the command line"
    for path in (s.models_dir, s.results_dir):
        assert isinstance(path, Path) and path.is_absolute() and ".." not in path.parts


def test_ini_files_and_folders_resolve_beside_the_ini_file_and_other_values_stay(pytester, monkeypatch):
    proj = pytester.path / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / "data" / "wiki.txt").write_text("a\n")
    (proj / "data" / "tok").mkdir()
    ini = _ini(proj, "pytest.ini", accuracy_wikitext="data/wiki.txt", accuracy_chunk_tokenizer="data/tok",
               accuracy_dataset="data/wiki.txt", variants="data/nowhere.toml")
    s = settings_in(pytester, monkeypatch, proj / "sub", "-c", str(ini))
    assert s.accuracy_wikitext == s.accuracy_dataset == str(proj / "data" / "wiki.txt")
    assert s.accuracy_chunk_tokenizer == str(proj / "data" / "tok")
    assert s.variants == "data/nowhere.toml"  # nothing there: a name in the suite's folder, as before
    ini = _ini(proj, "pytest.ini", accuracy_wikitext="builtin", accuracy_chunk_tokenizer="meta-llama/Llama-2-7b-hf")
    s = settings_in(pytester, monkeypatch, proj / "sub", "-c", str(ini), "--accuracy-dataset", "data/wiki.txt")
    assert (s.accuracy_wikitext, s.accuracy_chunk_tokenizer) == ("builtin", "meta-llama/Llama-2-7b-hf")
    assert s.accuracy_dataset == "data/wiki.txt"  # the command line's: relative to the working directory


# --- a folder that is not there ----------------------------------------------------------------


def test_a_tokenizer_folder_that_is_not_there_is_one_line_and_never_asks_the_hub(tmp_path, monkeypatch):
    def no_hub(repo_id):
        raise AssertionError(f"asked the hub for {repo_id!r}")

    monkeypatch.setattr(lean, "_hub_files", no_hub)
    monkeypatch.chdir(tmp_path)
    for name, folder in ((str(tmp_path / "models" / "M"), tmp_path / "models" / "M"),
                         ("./M", tmp_path / "M"), ("~/M", Path.home() / "M"), ("a/b/c", tmp_path / "a" / "b" / "c")):
        with pytest.raises(ConfigError) as caught:
            load_tokenizer(name, note="${models_dir} is X: the default. Pass --models-dir DIR")
        message = str(caught.value)
        assert isinstance(caught.value, RuntimeError)  # what callers caught before
        assert "\n" not in message and f"there is no folder {folder}." in message, message
        assert message.endswith("${models_dir} is X: the default. Pass --models-dir DIR, or --tokenizer PATH")
    assert "--tokenizer PATH an existing folder" in str(lean.missing_folder(str(tmp_path / "nope")))
    assert lean.missing_folder("owner/name") is None and lean.missing_folder(str(tmp_path)) is None


def test_a_message_naming_a_folder_in_models_dir_says_where_models_dir_came_from(pytester, monkeypatch):
    s = settings_in(pytester, monkeypatch, pytester.path, "--rootdir", str(pytester.path))
    inside = s.models_dir / "SmolLM2-135M-Instruct"
    note = s.models_dir_note(inside)
    assert note.startswith(f"${{models_dir}} is {s.models_dir}: the default .cache/models under pytest's rootdir")
    assert "--models-dir DIR" in note and s.models_dir_note(pytester.path / "elsewhere") == ""
    said = s.explain(f"the chunk tokenizer folder {inside} does not exist: give --accuracy-chunk-tokenizer PATH")
    assert said.endswith(note) and said.count("${models_dir} is") == 1
    assert s.explain(said) == said  # said once
    assert s.explain(f"the folder {s.models_dir}-old is missing") == f"the folder {s.models_dir}-old is missing"


# --- the suite run from outside the repository -------------------------------------------------

OUTSIDE = {
    # the case found by hand: the tokenizer is the suite's ${models_dir}/SmolLM2-135M-Instruct, under the default
    "default-models-dir": (("--server-url", "http://127.0.0.1:9"), "{x}/.cache/models/SmolLM2-135M-Instruct",
                           "the default .cache/models under pytest's rootdir {x}"),
    "models-dir-given": (("--server-url", "http://127.0.0.1:9", "--models-dir", "empty"),
                         "{x}/empty/SmolLM2-135M-Instruct", "--models-dir empty on the command line"),
    "tokenizer-given": (("--tokenizer", "./nope"), "{x}/nope", "--tokenizer PATH an existing folder"),
    # with the gate: its chunk tokenizer is the same folder (the suite's prepare would build the model itself)
    "gate": ((), "{x}/.cache/models/SmolLM2-135M-Instruct", "the default .cache/models under pytest's rootdir {x}"),
}


def copy_suite_outside(root: Path) -> Path:
    """suites/smollm2-cpu copied into ``root/x``, a folder with no ini file; returns ``root/x``."""
    x = root / "x"
    shutil.copytree(REPO / "suites" / "smollm2-cpu", x / "smollm2-cpu", ignore=shutil.ignore_patterns("__pycache__"))
    (x / "empty").mkdir()
    return x


def check_one_line_error(output: str, ret: int, x: Path, folder: str, how: str) -> None:
    assert ret == pytest.ExitCode.USAGE_ERROR, output
    assert "Traceback" not in output and "huggingface_hub" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert folder.format(x=x) in errors[0] and how.format(x=x) in errors[0], errors[0]


@pytest.mark.parametrize("case", sorted(OUTSIDE))
def test_a_suite_run_from_outside_the_repository_says_which_folder_it_looked_in(pytester, monkeypatch, case):
    args, folder, how = OUTSIDE[case]
    x = copy_suite_outside(pytester.path)
    monkeypatch.chdir(x)

    def never(*_: object, **__: object) -> None:
        raise AssertionError("a unit test must not build a model or start a server")

    monkeypatch.setattr(SuiteCatalog, "prepare_model", never)
    monkeypatch.setattr(ServerPool, "acquire", never)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = pytester.runpytest_inprocess(str(x / "smollm2-cpu"), "-p", "no:cacheprovider", "-k", "c1",
                                          "--server-ready-timeout", "1", *(("--skip-accuracy",) if args else ()), *args)
    output = result.stdout.str() + "\n" + result.stderr.str()
    assert f"rootdir: {x}" in output, output
    check_one_line_error(output, result.ret, x, folder, how)
    assert not (x / ".cache").exists()  # nothing built: refused before any server or model build

"""What the documents cite and show holds for a reader with only this repository.

- No file cites ``shared/seeds/…`` or ``shared/reference/…``: notes kept beside the project while it was
  built, not part of it. A source is cited upstream instead, by URL and commit.
- README's ``-k`` examples select exactly the points their comments name (``pytest --collect-only`` from the
  repository root, in this process: the ``collect_only`` fixture)."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = re.compile(r"shared/(?:seeds|reference)\b")
K_EXAMPLE = re.compile(r"^(pytest suites/\S+ [^#\n]*-k [^#\n]*?)\s+# selects ([\w .-]+)$", re.M)
SKIPPED_DIRS = {".git", ".venv", "results", ".cache", "tests", "node_modules", "__pycache__"}


def tracked_files() -> list[Path]:
    """The repository's files (git's list; without git, the tree less the usual untracked folders), tests left out."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts)]
    return [ROOT / n for n in names if n.split("/")[0] != "tests" and (ROOT / n).is_file()]


def test_no_file_cites_the_private_notes():
    found = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files cite nothing
        found += [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
                  if PRIVATE.search(line)]
    assert not found, ("these lines cite shared/seeds or shared/reference, which are not in the repository; "
                       "cite the upstream file by URL and commit instead:\n" + "\n".join(found))


def readme_k_examples() -> list[tuple[str, str]]:
    return K_EXAMPLE.findall((ROOT / "README.md").read_text())


def test_readme_shows_k_examples():
    assert len(readme_k_examples()) >= 3, "README.md lost its `pytest suites/... -k ...  # selects <ids>` examples"


@pytest.mark.parametrize("command, ids", readme_k_examples())
def test_readme_k_example_selects_what_it_says(command, ids, tmp_path, collect_only):
    out = collect_only(*shlex.split(command)[1:], "-q", "--results-dir", str(tmp_path)).stdout.str()
    selected = re.findall(r"::test_point\[([^\]]+)\]$", out, re.M)
    assert selected == ids.split(), f"README's `{command}` selects {selected}, not {ids.split()}"

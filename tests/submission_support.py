"""Shared by the submission tests (tests/unit/test_submission.py, test_submit_verdicts.py, test_space_signature.py):
records of both stages' layouts, a run folder made of them, quick retry settings and a port nothing listens on.
Their fixtures (no HF token or leaderboard override in the environment, no name but the loopback resolving) are in
tests/unit/conftest.py: ``submission_env`` and ``loopback_dns``."""
from __future__ import annotations

import json
import socket
from pathlib import Path

from record_factory import record_dict

S1_TEMPLATE = "https://daniehua-gptoss-fp4-vllm-isl${isl}osl${osl}.hf.space"
S2_TEMPLATE = "https://daniehua-gptoss-fp4-isl${isl}osl${osl}.hf.space"
FAST = {"retries": 4, "backoff": 0.01, "timeout": 5, "confirm_timeout": 5}


def s1_record(conc: int = 4) -> dict:
    return {
        "date": "20260101-000000", "backend": "vllm", "max_concurrency": conc, "completed": 40, "num_prompts": 40,
        "median_e2el_ms": 2100.123456789, "tput_per_gpu": 420.987654321, "interactivity": 440.5,
        "b200_baseline_nv1126": {"b200_median_e2e_1126": 2162.0, "b200_tput_pergpu_1126": 413.779,
                                 "b200_median_intvty_1126": 434.57},
        "tput_per_gpu_ratio_vs_b200_1126": 1.0174, "median_e2e_ratio_vs_b200_1126": 0.9714,
        "interactivity_ratio_vs_b200_1126": 1.0136, "baseline_note": "B200 NV-1126 (b200-nv1126.toml)",
        "accuracy": {"bits_per_byte": 2.01, "byte_perplexity": 4.02, "word_perplexity": 210.5},
        "accuracy_validation": {"status": "PASSED", "task": "wikitext", "rule": "max_ratio"},
        "inferencemax": {"point": f"gptoss-1024-1024-c{conc}", "suite": "gptoss", "stage": "s1", "isl": 1024,
                         "osl": 1024, "conc": conc, "failed": 0, "leaderboard_url": S1_TEMPLATE,
                         "verdict_rule": {"rule": "beat_baseline_share"}},  # it beats its baseline: qualified
    }


def s2_record(conc: int = 32) -> dict:
    return {
        "date": "20260301-000000", "backend": "vllm", "max_concurrency": conc,
        "median_e2el_ms": 5900.5, "tput_per_gpu": 22000.25, "interactivity": 151.0,
        "baseline_nv1126": {"baseline_median_e2e_1126": 6000.0, "baseline_tput_pergpu_1126": 21500.0,
                            "baseline_median_intvty_1126": 150.0},
        "tput_per_gpu_ratio_vs_baseline_1126": 1.0233, "median_e2e_ratio_vs_baseline_1126": 0.9834,
        "interactivity_ratio_vs_baseline_1126": 1.0067,
        "accuracy": {"gsm8k_metric": 0.4246, "task": "gsm8k"},
        "accuracy_validation": {"status": "PASSED", "task": "gsm8k", "rule": "min_score"},
        "inferencemax": {"point": f"gptoss-8192-1024-c{conc}", "suite": "gptoss", "stage": "s2", "isl": 8192,
                         "osl": 1024, "conc": conc, "failed": 0, "leaderboard_url": S2_TEMPLATE,
                         "verdict_rule": {"rule": "targets"}},  # it meets all three targets: qualified
    }


def write_run(run_dir: Path, records: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    for rec in records:
        (run_dir / f"{rec['inferencemax']['point']}.json").write_text(json.dumps(record_dict(rec)), encoding="utf-8")
    (run_dir / "summary.json").write_text(json.dumps({"points": [], "failures": []}), encoding="utf-8")
    (run_dir / "manifest.json").write_text(json.dumps({"inferencemax": {"x": 1}}), encoding="utf-8")
    (run_dir / "manifest-gw0.json").write_text("{}", encoding="utf-8")
    return run_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

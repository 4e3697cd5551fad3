"""A stage's failure_rule: "any" (the bounty's: one failed request makes a point partial) or "max_rate:R"
(InferenceX's 5 %: up to that share the point counts), and InferenceX's benchmark_outcome beside it."""
from __future__ import annotations

import pytest

from record_factory import point_record
from pytest_inferencemax.judge.curve import build_curves
from pytest_inferencemax.plan.rules import max_failed_share
from pytest_inferencemax.plan.suite import SuiteError, load_suite
from pytest_inferencemax.publish.submission import check_submittable

@pytest.mark.parametrize("rule, share", [(None, 0.0), ("any", 0.0), ("max_rate:0.05", 0.05), ("max_rate:0", 0.0)])
def test_the_rule_as_a_share(rule, share):
    assert max_failed_share(rule) == share


@pytest.mark.parametrize("rule", ["max_rate:1", "max_rate:-0.1", "max_rate:x", "some", "max:0.05"])
def test_a_bad_rule_names_the_two_forms(rule):
    with pytest.raises(ValueError, match=r'write "any" .* or "max_rate:R" with 0 <= R < 1'):
        max_failed_share(rule)


def record(failed: int, rule: str | None):
    rec = point_record(4, 400.0, failed=failed)  # 40 requests (the golden record's 10 x CONC 4)
    rec.ours.failure_rule = rule
    return rec


@pytest.mark.parametrize("failed, rule, status, counts, outcome", [
    (0, "any", "ok", False, "success"),
    (1, "any", "partial", True, "success"),  # the bounty's rule: one is enough; InferenceX would accept the run
    (1, None, "partial", True, "success"),  # a record from before the rule was kept: "any"
    (2, "max_rate:0.05", "ok", False, "success"),  # 5 % exactly: within
    (3, "max_rate:0.05", "partial", True, "failure"),  # 7.5 %
])
def test_status_and_outcome_follow_the_rule(failed, rule, status, counts, outcome):
    rec = record(failed, rule)
    assert rec.num_prompts == 40 and rec.failed_share == failed / 40
    assert (rec.status, rec.failures_count, rec.inferencex_outcome()) == (status, counts, outcome)


def test_a_point_within_the_rule_is_judged_and_submitted_as_clean():
    within, beyond = record(2, "max_rate:0.05"), record(2, "any")
    assert not any("failed" in p for p in check_submittable(within))
    assert any("2 request(s) failed (5.0%, failure_rule any)" in p for p in check_submittable(beyond))
    [curve] = build_curves([within])
    assert curve.points[0].failed_requests == 0
    [curve] = build_curves([beyond])
    assert curve.points[0].failed_requests == 2  # the verdict's rules then never count it as beating a baseline


def test_a_suite_with_a_bad_rule_fails_to_load_naming_it(tmp_path):
    suite = (tmp_path / "suite.toml")
    suite.write_text('[suite]\nname = "x"\nmodel = "m"\nengine = "vllm"\ndefault_stage = "s"\n[server]\nargv = ["x"]\n'
                     '[stages.s]\nfailure_rule = "max_rate:5"\nworkloads = [{ isl = 1, osl = 1, conc = [1], '
                     'prompts_per_conc = 1 }]\n')
    with pytest.raises(SuiteError, match=r"failure_rule 'max_rate:5': write \"any\""):
        load_suite(suite)

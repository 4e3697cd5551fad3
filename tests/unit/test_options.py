"""Command-line validators, and one check through pytest's own option parsing."""
from __future__ import annotations

import argparse
import math
import re

import pytest

from pytest_inferencemax.plan.values import (
    boolean, conc_list, goodput_slos, http_url, json_object, non_negative_int, port_number, positive_float, positive_int,
    run_name,
)
from pytest_inferencemax.plan.options import OPTIONS

Bad = argparse.ArgumentTypeError


# --- positive_int ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("1", 1), ("42", 42), (" 7 ", 7), ("1000000", 1000000)])
def test_positive_int_accepts(text, value):
    assert positive_int(text) == value


@pytest.mark.parametrize("text, message", [
    ("0", "'0' must be at least 1"),
    ("-3", "'-3' must be at least 1"),
    ("x", "'x' is not a whole number"),
    ("1.5", "'1.5' is not a whole number"),
    ("", "'' is not a whole number"),
])
def test_positive_int_rejects(text, message):
    with pytest.raises(Bad) as exc:
        positive_int(text)
    assert str(exc.value) == message


# --- non_negative_int ------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("0", 0), ("1", 1), ("12345", 12345)])
def test_non_negative_int_accepts(text, value):
    assert non_negative_int(text) == value


@pytest.mark.parametrize("text, message", [
    ("-1", "'-1' must be 0 or more"),
    ("seven", "'seven' is not a whole number"),
    ("2.0", "'2.0' is not a whole number"),
])
def test_non_negative_int_rejects(text, message):
    with pytest.raises(Bad) as exc:
        non_negative_int(text)
    assert str(exc.value) == message


# --- positive_float --------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("1", 1.0), ("0.5", 0.5), ("1800", 1800.0), ("1e-3", 0.001)])
def test_positive_float_accepts(text, value):
    assert positive_float(text) == value
    assert isinstance(positive_float(text), float)


@pytest.mark.parametrize("text, message", [
    ("0", "'0' must be a finite number more than 0"),
    ("-2.5", "'-2.5' must be a finite number more than 0"),
    ("nan", "'nan' must be a finite number more than 0"),
    ("soon", "'soon' is not a number of seconds"),
    ("", "'' is not a number of seconds"),
])
def test_positive_float_rejects(text, message):
    with pytest.raises(Bad) as exc:
        positive_float(text)
    assert str(exc.value) == message


@pytest.mark.parametrize("text", ["inf", "Infinity", "1e400"])
def test_positive_float_rejects_infinity(text):
    # --request-timeout inf would become a request deadline of loop.time() + inf, which the
    # event loop's timer cannot hold, and the record's request_timeout_s would make
    # write_json_atomic fail (allow_nan=False). A seconds value must be finite.
    assert math.isinf(float(text))
    with pytest.raises(Bad, match=repr(text)):
        positive_float(text)


# --- port_number -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("0", 0), ("1", 1), ("8888", 8888), ("65535", 65535)])
def test_port_number_accepts(text, value):
    assert port_number(text) == value


@pytest.mark.parametrize("text, message", [
    ("65536", "'65536' is not a TCP port (1-65535, or 0 for a free one)"),
    ("100000", "'100000' is not a TCP port (1-65535, or 0 for a free one)"),
    ("-1", "'-1' must be 0 or more"),
    ("http", "'http' is not a whole number"),
])
def test_port_number_rejects(text, message):
    with pytest.raises(Bad) as exc:
        port_number(text)
    assert str(exc.value) == message


# --- conc_list -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("4", (4,)), ("4,8,16", (4, 8, 16)), (" 4 , 8 ", (4, 8)), ("4,8,", (4, 8)), ("64,1", (64, 1)),
])
def test_conc_list_accepts(text, value):
    assert conc_list(text) == value


@pytest.mark.parametrize("text, message", [
    ("", "give concurrencies as a comma-separated list, e.g. 4,8,16"),
    (" , ,", "give concurrencies as a comma-separated list, e.g. 4,8,16"),
    ("4,x", "'x' is not a whole number"),
    ("4,0", "'0' must be at least 1"),
    ("4,-2", "'-2' must be at least 1"),
    ("4,8,4", "'4,8,4' lists a concurrency twice"),
])
def test_conc_list_rejects(text, message):
    with pytest.raises(Bad) as exc:
        conc_list(text)
    assert str(exc.value) == message


# --- http_url --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("http://127.0.0.1:8888", "http://127.0.0.1:8888"),
    ("http://127.0.0.1:8888/", "http://127.0.0.1:8888"),
    ("https://example.com", "https://example.com"),
    ("http://[::1]:8000", "http://[::1]:8000"),
])
def test_http_url_accepts(text, value):
    assert http_url(text) == value


@pytest.mark.parametrize("text", ["127.0.0.1:8888", "localhost:8000", "ftp://host:21", "http://", "", "http:///x"])
def test_http_url_rejects_what_is_not_an_http_url(text):
    with pytest.raises(Bad) as exc:
        http_url(text)
    assert str(exc.value) == f"{text!r} is not an http(s) URL like http://127.0.0.1:8888"


@pytest.mark.parametrize("text", ["http://127.0.0.1:8888/v1", "http://h:8/v1/completions"])
def test_http_url_rejects_endpoint_paths(text):
    with pytest.raises(Bad) as exc:
        http_url(text)
    assert str(exc.value).startswith(repr(text))
    assert "not an endpoint path such as /v1" in str(exc.value)


@pytest.mark.parametrize("text", ["http://127.0.0.1:99999", "http://127.0.0.1:port"])
def test_http_url_rejects_a_bad_port(text):
    # urlsplit() accepts these; only .port raises. Accepted, they fail later at connect time.
    with pytest.raises(Bad, match="127.0.0.1"):
        http_url(text)


@pytest.mark.parametrize("text", ["http://127.0.0.1:8888?x=1", "http://127.0.0.1:8888#frag"])
def test_http_url_rejects_query_and_fragment(text):
    # The load generator appends the endpoint to this root: "http://h:8?x=1" + "/v1/completions"
    # would send the endpoint inside the query string.
    with pytest.raises(Bad):
        http_url(text)


# --- json_object -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ('{"top_k": 1}', {"top_k": 1}), ("{}", {}), ('{"a": {"b": [1, 2]}, "c": null}', {"a": {"b": [1, 2]}, "c": None}),
])
def test_json_object_accepts(text, value):
    assert json_object(text) == value


@pytest.mark.parametrize("text", ["[1, 2]", '"top_k"', "1", "null", "true"])
def test_json_object_rejects_non_objects(text):
    with pytest.raises(Bad) as exc:
        json_object(text)
    assert str(exc.value) == "must be a JSON object, e.g. '{\"top_k\": 1}'"


@pytest.mark.parametrize("text", ["{top_k: 1}", "{'top_k': 1}", "", '{"a": 1'])
def test_json_object_rejects_invalid_json(text):
    with pytest.raises(Bad) as exc:
        json_object(text)
    msg = str(exc.value)
    assert msg.startswith("not valid JSON (")
    assert "'{\"top_k\": 1}'" in msg  # shows an example


# --- run_name --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["run1", "2025-01-01_gptoss", "a.b", "..x"])
def test_run_name_accepts(text):
    assert run_name(text) == text


@pytest.mark.parametrize("text", ["", ".", "..", "a/b", "a\\b", "/abs", "../up"])
def test_run_name_rejects(text):
    with pytest.raises(Bad) as exc:
        run_name(text)
    assert str(exc.value) == f"{text!r} cannot name a folder; use letters, digits, - and _"


# --- the option table ------------------------------------------------------------------------


def test_option_table_is_consistent():
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names))
    for o in OPTIONS:
        assert o.dest == "inferencemax_" + o.name.replace("-", "_")
        if o.flag:  # a flag's ini twin is read as yes/no
            assert o.type is (boolean if o.ini else None), o.name
        if o.default is not None and o.type is not None and not o.flag:
            # Every default passes its own validator.
            assert o.type(str(o.default)) == o.default, o.name


# --- through pytest --------------------------------------------------------------------------


def test_bad_ini_value_is_a_usage_error_naming_the_setting(pytester):
    pytester.makeini("[pytest]\ninferencemax_seed = -1\n")
    result = pytester.runpytest()
    assert result.ret == 4
    assert "ini setting inferencemax_seed = '-1': '-1' must be 0 or more" in result.stderr.str()


def test_good_options_pass(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest("--conc", "4,8", "--seed", "3", "--port", "0",
                                           "--extra-body", '{"top_k": 1}', "--run-id", "r1")
    assert result.ret == 0
    result.assert_outcomes(passed=1)


def test_every_error_the_package_raises_on_purpose_is_in_one_tree():
    """One base, four branches; the leaves keep the standard bases callers may catch."""
    from pytest_inferencemax import errors
    from pytest_inferencemax.gate.accuracy import AccuracyError
    from pytest_inferencemax.judge.baseline import BaselineError
    from pytest_inferencemax.results.compare import CompareError
    from pytest_inferencemax.results.record import RecordError
    from pytest_inferencemax.cli.matrix import MatrixError
    from pytest_inferencemax.results.merge_inputs import MergeError
    from pytest_inferencemax.measure.runner import PointAborted
    from pytest_inferencemax.serve.server import ServerError
    from pytest_inferencemax.publish.submission import SubmissionError
    from pytest_inferencemax.plan.suite import SuiteError
    from pytest_inferencemax.plan.rules import VerdictError

    tree = {errors.ConfigError: (SuiteError, BaselineError, VerdictError, AccuracyError, MatrixError),
            errors.ServerError: (ServerError,), errors.PointError: (PointAborted,),
            errors.ResultsError: (RecordError, CompareError, MergeError, SubmissionError)}
    for branch, leaves in tree.items():
        assert issubclass(branch, errors.InferenceMaxError)
        assert all(issubclass(leaf, branch) for leaf in leaves), branch
    assert all(issubclass(leaf, ValueError) for leaf in tree[errors.ConfigError] + tree[errors.ResultsError])
    assert issubclass(ServerError, RuntimeError) and issubclass(PointAborted, RuntimeError)
    documented = errors.__doc__
    assert all(leaf.__name__ in documented for leaves in tree.values() for leaf in leaves)


@pytest.mark.parametrize("text, value", [("true", True), ("Yes", True), ("1", True), ("false", False), ("OFF", False)])
def test_a_flags_ini_twin_reads_yes_and_no(text, value):
    assert boolean(text) is value


def test_a_flags_ini_twin_refuses_anything_else():
    with pytest.raises(Bad, match="'maybe' is not a yes/no value: use true or false"):
        boolean("maybe")


# --- goodput_slos ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, slos", [("ttft:500 tpot:50", {"ttft": 500.0, "tpot": 50.0}),
                                        ("e2el:10000,ttft:1.5", {"e2el": 10000.0, "ttft": 1.5}),
                                        ("ttft:1 ttft:2", {"ttft": 2.0}), ("tpot:0", {"tpot": 0.0})])
def test_goodput_slos_accepts(text, slos):
    assert goodput_slos(text) == slos


@pytest.mark.parametrize("text, message", [
    ("ttft", "'ttft' is not KEY:VALUE; write SLOs in milliseconds"),
    ("ttft:fast", "'ttft:fast' is not KEY:VALUE"),
    ("itl:5", "'itl' is not an SLO the reference client knows; use ttft, tpot, e2el"),
    ("tpot:-1", "'tpot:-1': an SLO must be 0 or more milliseconds"),
    ("  ", "no SLO given"),
])
def test_goodput_slos_rejects(text, message):
    with pytest.raises(Bad, match=re.escape(message)):
        goodput_slos(text)


# --- --reset-prefix-cache --------------------------------------------------------------------


def test_reset_modes_and_which_recipes_cache_prefixes():
    from pytest_inferencemax.plan.values import cache_reset_mode
    from pytest_inferencemax.serve.prefix_cache import caching_enabled

    assert [cache_reset_mode(m) for m in ("auto", "on", " off ")] == ["auto", "on", "off"]
    with pytest.raises(Bad, match="'always': write auto, on or off"):
        cache_reset_mode("always")
    assert caching_enabled("vllm", ["vllm", "serve", "m"]) is True  # vLLM caches prefixes unless told not to
    assert caching_enabled("vllm", ["--no-enable-prefix-caching"]) is False
    assert caching_enabled("sglang", ["--disable-radix-cache"]) is False and caching_enabled("sglang", []) is True
    assert caching_enabled("atom", []) is None

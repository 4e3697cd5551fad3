"""Command-line validators, and one check through pytest's own option parsing."""
from __future__ import annotations


import pytest



# --- positive_int ----------------------------------------------------------------------------


# --- non_negative_int ------------------------------------------------------------------------


# --- positive_float --------------------------------------------------------------------------


# --- port_number -----------------------------------------------------------------------------


# --- conc_list -------------------------------------------------------------------------------


# --- http_url --------------------------------------------------------------------------------


# --- json_object -----------------------------------------------------------------------------


# --- run_name --------------------------------------------------------------------------------


# --- the option table ------------------------------------------------------------------------


# --- through pytest --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["inprocess", "subprocess"])
def test_bad_conc_on_the_command_line_is_a_usage_error(pytester, how):
    # In a subprocess the plugin comes in through its pytest11 entry point, as for a user.
    run = pytester.runpytest if how == "inprocess" else pytester.runpytest_subprocess
    result = run("--conc", "4,x")
    assert result.ret == 4
    err = result.stderr.str()
    assert "--conc" in err
    assert "'x' is not a whole number" in err


def test_help_lists_every_option_and_renders(pytester_help=None):
    # argparse %-formats help texts: a bare "%" in one of them broke `pytest --help` once.
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("--client-procs", "--client-lag-limit-ms", "--fail-client-bound", "--compare-tolerance"):
        assert name in out.stdout
    assert "5% of the point's median gap" in out.stdout



"""The CLI is a thin layer: help everywhere, one-line errors (exit 2 for a user error, 3 for an
environment error (tests/test_environment_errors.py), 1 for a bug, 130 when interrupted), --debug
lets the traceback through."""

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from gliotype import __version__
from gliotype.cli import app

runner = CliRunner()


def _command_paths(cmd, prefix=()):
    yield prefix
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _command_paths(sub, prefix + (name,))


@pytest.mark.parametrize("path", list(_command_paths(get_command(app))), ids=lambda p: " ".join(p) or "gliotype")
def test_every_command_has_help(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_config_show_applies_overrides():
    result = runner.invoke(app, ["config", "show", "--preset", "tiny", "--set", "ssl.node.epochs=11"])
    assert result.exit_code == 0
    assert "epochs: 11" in result.output and "preset: tiny" in result.output


def test_user_error_is_one_line_without_traceback():
    result = runner.invoke(app, ["config", "show", "--set", "ssl.node.epochz=1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: config: ssl.node.epochz: Extra inputs are not permitted"]
    assert "Traceback" not in result.output


def test_run_ablation_names_a_table4_row(tmp_path):
    result = runner.invoke(app, ["run", "--out", str(tmp_path / "run"), "--data", str(tmp_path), "--preset", "tiny",
                                 "--ablation", "fB + MLP", "--ablation", "fQ + MLP"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[0].startswith("error: unknown Table 4 row 'fQ + MLP': choose from fI + MLP")
    assert not (tmp_path / "run").exists()  # checked before any work


@pytest.fixture
def broken_config(monkeypatch):
    """`config show` (any command) hitting a bug: the API raises an unexpected exception."""
    import gliotype.config

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(gliotype.config, "load_config", boom)


def test_internal_error_is_one_line_exit_1(broken_config):
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: internal error (RuntimeError: boom); rerun with --debug for details"]


def test_debug_lets_the_traceback_through(broken_config):
    result = runner.invoke(app, ["--debug", "config", "show"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


@pytest.mark.parametrize("debug", [False, True])
def test_an_eof_error_is_a_bug_and_debug_shows_its_traceback(monkeypatch, debug):
    """click's main turns an EOFError (a truncated gzip stream or pickle) into a bare "Aborted!";
    the one line names it, and --debug prints its traceback."""
    import gliotype.config

    def truncated(*args, **kwargs):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(gliotype.config, "load_config", truncated)
    result = runner.invoke(app, ["--debug", "config", "show"] if debug else ["config", "show"])
    assert result.exit_code == 1 and "Aborted" not in result.output
    if debug:
        assert result.output.startswith("Traceback (most recent call last):")
        assert "in truncated" in result.output  # the frame that raised it
        assert result.output.rstrip().endswith("EOFError: Compressed file ended before the end-of-stream marker "
                                               "was reached")
    else:
        assert result.output.strip().splitlines() == [
            "error: internal error (EOFError: Compressed file ended before the end-of-stream marker was reached); "
            "rerun with --debug for details"]


def test_user_error_with_debug_raises_it():
    from gliotype.errors import GliotypeError

    result = runner.invoke(app, ["--debug", "config", "show", "--set", "ssl.node.epochz=1"])
    assert isinstance(result.exception, GliotypeError)
    plain = runner.invoke(app, ["config", "show", "--set", "ssl.node.epochz=1"])
    assert plain.exit_code == 2 and isinstance(plain.exception, SystemExit)  # the one line, no traceback


def test_interrupt_is_one_line_exit_130(monkeypatch):
    import gliotype.config

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gliotype.config, "load_config", interrupted)
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 130
    assert result.output.strip().splitlines() == ["error: interrupted; rerun the same command to resume"]


def test_preprocess_is_one_call_to_stages_prepare(monkeypatch, tmp_path):
    """`gliotype preprocess` hands its options to stages.prepare and prints what it returns; no usable
    patient is a one-line error."""
    import pandas as pd

    from gliotype import stages

    seen = {}

    def prepare(manifest, work, config, workers, bids_derivatives):
        seen.update(manifest=manifest, work=work, skull=config.preprocess.skull_stripped, workers=workers,
                    bids=bids_derivatives)
        pre = pd.DataFrame({"patient_id": ["P1", "P2"], "status": ["done", "failed"], "reason": ["", "no mask"]})
        built = pd.DataFrame({"patient_id": ["P1"], "status": ["failed"], "reason": ["tumour too small"]})
        return stages.Prepared(pre, built, stages.usable(built))

    monkeypatch.setattr(stages, "prepare", prepare)
    result = runner.invoke(app, ["preprocess", str(tmp_path / "m.csv"), "--out", str(tmp_path / "w"), "--preset", "tiny",
                                 "--workers", "1", "--skull-stripped", "yes"])
    assert result.exit_code == 2
    assert result.output.splitlines() == ["preprocessing: 1 done, 1 failed", "  patient P2: no mask",
                                          "modalities: 1 failed", "  patient P1: tumour too small",
                                          "error: no patient could be preprocessed"]
    assert seen == {"manifest": tmp_path / "m.csv", "work": tmp_path / "w", "skull": "yes", "workers": 1,
                    "bids": True}  # BIDS rows: derivatives in <BIDS root>/derivatives/gliotype by default
    for option, bids in (["--no-bids-derivatives"], False), (["--bids-derivatives", str(tmp_path / "d")], tmp_path / "d"):
        runner.invoke(app, ["preprocess", str(tmp_path / "m.csv"), "--out", str(tmp_path / "w"), *option])
        assert seen["bids"] == bids


@pytest.mark.parametrize("argv", [["preprocess", "--help"], ["--help"], ["config", "show"]])
def test_a_reader_that_leaves_the_pipe_gets_no_error(argv):
    """`gliotype ... | head`: the reader closes the pipe before gliotype writes; gliotype stops without
    a word on stderr (click's exit 1), not with "internal error (BrokenPipeError)"."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first byte
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    try:
        done = subprocess.run([sys.executable, "-m", "gliotype", *argv], stdout=write, stderr=subprocess.PIPE,
                              env=env, timeout=120)
    finally:
        os.close(write)
    assert done.stderr.decode() == ""
    assert done.returncode == 1


def test_a_broken_pipe_elsewhere_is_still_reported(monkeypatch):
    """A BrokenPipeError that is not about standard output (e.g. between worker processes) is one line."""
    import gliotype.config

    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(gliotype.config, "load_config", broken)
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: internal error (BrokenPipeError: [Errno 32] Broken pipe); rerun with " \
                                    "--debug for details"


_EXIT_SCRIPT = """
import atexit, sys
import gliotype.cli as cli

class Teardown:
    def __del__(self):
        print("torn down", flush=True)

kept = Teardown()
atexit.register(lambda: print("atexit ran", flush=True))
cli._QUICK_EXIT = {quick}
sys.argv = ["gliotype", *{argv}]
cli.main()
"""


@pytest.mark.parametrize("argv, code", [(["--version"], 0), (["no-such-command"], 2)])
def test_the_quick_exit_skips_the_teardown_only(argv, code):
    """After `gliotype predict` (cli._QUICK_EXIT) the console entry leaves without the interpreter's
    teardown (1-1.5 s with torch loaded) but with the atexit handlers, the flushed output and the
    command's exit code; every other command exits the ordinary way."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    runs = {quick: subprocess.run([sys.executable, "-c", _EXIT_SCRIPT.format(quick=quick, argv=argv)],
                                  capture_output=True, text=True, env=env, timeout=120) for quick in (True, False)}
    for quick, done in runs.items():
        assert done.returncode == code, done.stderr
        assert "atexit ran" in done.stdout
        assert ("torn down" in done.stdout) is not quick
    if code == 0:
        assert runs[True].stdout.startswith("gliotype ")  # the command's own output, flushed before os._exit
    else:
        assert "no-such-command" in runs[True].stderr


def test_predict_asks_for_the_quick_exit(monkeypatch, tmp_path):
    import gliotype.cli as cli

    monkeypatch.setattr(cli, "_QUICK_EXIT", False)
    runner.invoke(app, ["predict", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert cli._QUICK_EXIT
    monkeypatch.setattr(cli, "_QUICK_EXIT", False)
    runner.invoke(app, ["config", "show"])
    assert not cli._QUICK_EXIT

"""The CLI is a thin layer: help everywhere, one-line errors, exit codes."""

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

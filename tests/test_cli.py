"""User mistakes give one clear line on stderr and exit code 2."""

import numpy as np
import pytest

from bench.cli import main


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("swagbench: error: ")
    return err[0]


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["run", "--config", "no/such.yaml"], "config file no/such.yaml does not exist"),
        (["run", "--backends", "nope"], "unknown backend 'nope'; choose from eager"),
        (["run", "--backends", "eager:int8"], "no int8 mode"),
        (["run", "data.source=/no/such.npz"], "dataset file /no/such.npz does not exist"),
        (["run", "ensemble.smaples=3"], "unknown key(s) ['smaples'] in ensemble"),
        (["run", "ensemble.folds=500"], "but ensemble.folds=500"),
        (["run", "model=vgg"], "unknown model 'vgg'"),
        (["summary", "/no/such/run"], "results.jsonl does not exist"),
    ],
)
def test_bad_input_one_line(argv, msg, capsys, tmp_path):
    assert main([*argv, *(["--results-dir", str(tmp_path)] if argv[0] == "run" else [])]) == 2
    assert msg in _one_error_line(capsys)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_wrong_shape_npz(tmp_path, capsys):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((20, 8, 8), np.float32), y=np.zeros(20, int))
    assert main(["run", f"data.source={path}", "--results-dir", str(tmp_path / "r")]) == 2
    assert "expected 4-D (N, C, H, W)" in _one_error_line(capsys)


def test_list_backends(capsys):
    assert main(["list-backends"]) == 0
    assert any(line.startswith("eager") and "available" in line for line in capsys.readouterr().out.splitlines())


def test_help_explains_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--config", "--backends", "--results-dir", "--name", "KEY=VALUE"):
        assert flag in out

"""The package imports and the CLI answers --help."""
import subprocess
import sys


def test_cli_help():
    r = subprocess.run([sys.executable, "-m", "runner", "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "train" in r.stdout and "inspect" in r.stdout


def test_caffe_flag_spellings():
    from runner.cli import normalize_argv
    assert normalize_argv(["-solver", "s.prototxt", "--weights=w", "-gpu", "0", "-1"]) == [
        "--solver", "s.prototxt", "--weights=w", "--gpu", "0", "-1"]
    assert normalize_argv(["--snapshot_prefix=x"]) == ["--snapshot-prefix=x"]

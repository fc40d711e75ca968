"""The `spectnet` command line: help texts, exit codes, error messages."""

from __future__ import annotations

import subprocess
import sys

import pytest

from spectnet.cli import build_parser, main

SPECTNET = [sys.executable, "-m", "spectnet.cli"]


@pytest.mark.parametrize("argv", [[], ["params"], ["physionet"], ["physionet", "fetch"],
                                  ["physionet", "preprocess"], ["physionet", "segment"],
                                  ["plot-segmentation"], ["params", "validate"], ["scenes"],
                                  ["scenes", "fetch"], ["scenes", "preprocess"]])
def test_every_command_has_a_useful_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "usage: spectnet" in text and len(text.splitlines()) >= 4


def test_console_script_runs():
    proc = subprocess.run([*SPECTNET, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("spectnet ")


def test_params_validate_reports_errors_with_exit_1(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("preprocess: {lowpass_hz: 300}\n")
    bad.write_text("preprocess: {lowpass_hz: 300, filter_order: 0}\nbeats: {beat_length: x}\n")
    assert main(["params", "validate", str(good)]) == 0
    assert main(["params", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "preprocess.filter_order" in err and "beats.beat_length" in err


def test_params_show_fills_defaults(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("{}\n")
    assert main(["params", "show", str(path)]) == 0
    assert "beat_length: 2500" in capsys.readouterr().out


def test_step_failure_is_one_clear_line_and_log_file(tmp_path, capsys):
    log = tmp_path / "logs" / "x.log"
    assert main(["physionet", "preprocess", "--raw", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "out"), "--params", "{}", "--log", str(log)]) == 1
    assert "missing: no records.csv" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    code = main(["plot-segmentation", "a0001", "--store", str(tmp_path / "nostore"),
                 "--params", "{}", "--log", str(log)])
    assert code == 1
    assert "nostore" in capsys.readouterr().err and "not a signal store" in log.read_text()


def test_plot_segmentation_draws_a_png(tmp_path, physionet_dir):
    from conftest import make_raw_dir
    from spectnet.config import PreprocessConfig
    from spectnet.preprocessing.heart_sounds import preprocess_dataset
    raw = make_raw_dir(tmp_path / "raw", {"a": ["a0001"]})
    preprocess_dataset(raw, tmp_path / "store", PreprocessConfig(), workers=1, progress=False)
    out = tmp_path / "figs"
    assert main(["plot-segmentation", "a0001", "--store", str(tmp_path / "store"),
                 "--out-dir", str(out), "--params", "{}"]) == 0
    png = (out / "segmentation-a0001.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert main(["plot-segmentation", "zz999", "--store", str(tmp_path / "store"),
                 "--out-dir", str(out), "--params", "{}"]) == 1


def test_plot_segmentation_draws_what_it_can_and_names_the_rest(tmp_path, physionet_dir, capsys):
    import pandas as pd
    import soundfile as sf
    from conftest import make_raw_dir
    from spectnet.config import PreprocessConfig
    from spectnet.preprocessing.heart_sounds import preprocess_dataset
    raw = make_raw_dir(tmp_path / "raw", {"a": ["a0001"]})
    # 0.8 s of real audio: preprocesses fine, but is too short to segment
    x, rate = sf.read(str(physionet_dir / "training-a/a0003.flac"))
    sf.write(str(raw / "training-a/a0003.wav"), x[: int(0.8 * rate)], rate, subtype="PCM_16")
    records = pd.read_csv(raw / "records.csv")
    records.loc[1] = {"record": "a0003", "subset": "a", "label": 1, "audio_path": "training-a/a0003.wav"}
    records.to_csv(raw / "records.csv", index=False)
    preprocess_dataset(raw, tmp_path / "store", PreprocessConfig(), workers=1, progress=False)
    out = tmp_path / "figs"
    out.mkdir()
    (out / "segmentation-b0001.png").write_bytes(b"an earlier figure")
    argv = ["--store", str(tmp_path / "store"), "--out-dir", str(out), "--params", "{}"]

    assert main(["plot-segmentation", "a0003", "a0001", "zz999", *argv]) == 0
    err = capsys.readouterr().err
    assert "a0003: not drawn: cannot be segmented: " in err and "too short" in err
    assert f"zz999: not drawn: not in the store {tmp_path / 'store'}" in err
    assert sorted(p.name for p in out.iterdir()) == ["segmentation-a0001.png",
                                                     "segmentation-b0001.png"]

    assert main(["plot-segmentation", "a0003", "zz999", *argv]) == 1
    err = capsys.readouterr().err
    assert "no segmentation figure could be drawn (2 problems):" in err
    assert "  a0003: cannot be segmented" in err and "  zz999: not in the store" in err
    assert "Traceback" not in err
    assert (out / "segmentation-b0001.png").read_bytes() == b"an earlier figure"
    assert (out / "segmentation-a0001.png").read_bytes().startswith(b"\x89PNG")

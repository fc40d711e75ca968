"""One params loader for every entry point: the Snakefile, the CLI and the library give a
file the same verdict, with file, line and column for syntax errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from spectnet.cli import main
from spectnet.params import ParamsError, coerce_overrides, load_params

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

BROKEN = {
    # name: (params.yaml text, the message every entry point must give)
    "missing colon": ("preprocess:\n  lowpass_hz: 300\n  highpass_hz 25\nbeats: {}\n",
                      "params.yaml:4:1: not valid YAML: could not find expected ':' "
                      "(while scanning a simple key at line 3, column 3)"),
    "unclosed brace": ("preprocess: {lowpass_hz: 300\n",
                       "params.yaml:2:1: not valid YAML: expected ',' or '}', but got "
                       "'<stream end>' (while parsing a flow mapping at line 1, column 13)"),
    "bad indentation": ("preprocess:\n  lowpass_hz: 300\n highpass_hz: 25\n",
                        "params.yaml:3:2: not valid YAML: expected <block end>, but found "
                        "'<block mapping start>' (while parsing a block mapping at line 1, "
                        "column 1)"),
    "tab": ("preprocess:\n\tlowpass_hz: 300\n",
            "params.yaml:2:1: not valid YAML: found character '\\t' that cannot start any "
            "token (while scanning for the next token)"),
    "duplicate key": ("beats: {beat_length: 2000}\npreprocess: {}\nbeats: {beat_length: 3}\n",
                      "params.yaml:3:1: not valid YAML: duplicate key 'beats' (first given "
                      "on line 1) (while constructing a mapping at line 1, column 1)"),
    "empty": ("# nothing but a comment\n",
              "params.yaml: the params file is empty; write `{}` to use every default"),
    "not a mapping": ("- 1\n- 2\n", "params.yaml: expected a mapping at the top level, "
                      "got list"),
}


@pytest.fixture
def workflow_copy(tmp_path):
    """The workflow files (no data) in a fresh directory, to run `snakemake -n` on."""
    shutil.copy(REPO / "Snakefile", tmp_path)
    shutil.copytree(REPO / "workflow", tmp_path / "workflow")
    return tmp_path


def verdicts(root: Path, text: str) -> tuple[str, str, str]:
    """What the library, `spectnet params validate` and `snakemake -n` say about a file."""
    (root / "params.yaml").write_text(text)
    try:
        load_params(root / "params.yaml")
        library = "valid"
    except ParamsError as exc:
        library = str(exc)
    cli = subprocess.run([str(BIN / "spectnet"), "params", "validate"], cwd=root, env=ENV,
                         capture_output=True, text=True)
    smk = subprocess.run([str(BIN / "snakemake"), "-n", "--cores", "1"], cwd=root, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return library, (cli.stderr if cli.returncode else "valid"), \
        (smk.stdout if smk.returncode else "valid")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing colon", "empty"])
def test_snakemake_and_cli_give_the_same_verdict_with_line_and_column(workflow_copy, case):
    text, message = BROKEN[case]
    library, cli, smk = verdicts(workflow_copy, text)
    assert library.replace(str(workflow_copy / "params.yaml"), "params.yaml").startswith(message)
    assert message in cli
    assert message in smk
    assert "Traceback" not in cli and "not valid JSON or YAML" not in smk


@pytest.mark.parametrize("case", list(BROKEN))
def test_every_broken_file_is_refused_with_its_position(tmp_path, case, capsys):
    text, message = BROKEN[case]
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError) as err:
        load_params(tmp_path / "params.yaml")
    assert str(err.value).startswith(f"{tmp_path}/{message}")
    assert main(["params", "validate", str(tmp_path / "params.yaml")]) == 1
    assert message.split(": ", 1)[1] in capsys.readouterr().err


def test_explicit_empty_mapping_means_every_default(tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    assert load_params(tmp_path / "params.yaml")["beats"]["beat_length"] == 2500


def test_command_line_overrides_get_the_schema_types():
    # What Snakemake hands over for --config preprocess='{...}' (YAML base loader: strings).
    raw = {"preprocess": {"lowpass_hz": "300", "remove_spikes": "false", "filter_order": "4",
                          "resampler": "polyphase"},
           "physionet": {"local_path": "2016", "on_bad_record": "skip"},
           "segmentation": {"plot_records": ["a0001", "b0001"]}}
    assert coerce_overrides(raw) == {
        "preprocess": {"lowpass_hz": 300, "remove_spikes": False, "filter_order": 4,
                       "resampler": "polyphase"},
        # a string-typed key keeps a number-looking value as a string
        "physionet": {"local_path": "2016", "on_bad_record": "skip"},
        "segmentation": {"plot_records": ["a0001", "b0001"]}}
    params = load_params(REPO / "params.yaml", overrides=raw)
    assert params["preprocess"]["lowpass_hz"] == 300 and params["preprocess"]["sample_rate"] == 1000
    assert params["physionet"]["local_path"] == "2016"
    assert params["physionet"]["folds"]["source"] == "auto"   # merged, not replaced


def test_an_override_that_is_still_the_wrong_type_gets_the_schema_message():
    # every step that reads the key is named (training records the preprocessing too)
    with pytest.raises(ParamsError, match=r"preprocess.lowpass_hz: 'high' is not of type "
                                          r"'number' \(read by: preprocess_physionet, "
                                          r"train_baseline_physionet, train_control_physionet, "
                                          r"train_learnable_physionet, "
                                          r"train_static_physionet\)"):
        load_params(REPO / "params.yaml", overrides={"preprocess": {"lowpass_hz": "high"}})
    with pytest.raises(ParamsError, match=r"params.yaml \(\+ --config\): preprocess.lowpass_hz: "
                                          r"0 is less than or equal to the minimum of 0"):
        load_params(REPO / "params.yaml", overrides={"preprocess": {"lowpass_hz": "0"}})


def test_step_keys_resolve_placeholders_from_params_and_wildcards(monkeypatch):
    from spectnet import params as params_module
    monkeypatch.setattr(params_module, "STEP_PARAMS", {
        "segment_physionet": ("beats",), "plot": ("segmentation",),
        "train": ("scale", "beats.{field}", "{section}.lowpass_hz")})
    params = {"scale": "beats", "beats": {"beat_length": 7, "other": 1},
              "preprocess": {"lowpass_hz": 300}}
    wildcards = {"field": "beat_length", "section": "preprocess"}
    assert params_module.step_keys(params, "train", wildcards) == [
        "scale", "beats.beat_length", "preprocess.lowpass_hz"]
    assert params_module.params_slice(params, "train", wildcards) == {
        "scale": "beats", "beats": {"beat_length": 7}, "preprocess": {"lowpass_hz": 300}}
    assert params_module.steps_reading("beats.beat_length") == [
        "segment_physionet", "train"]
    with pytest.raises(ParamsError, match=r"STEP_PARAMS\['train'\]: placeholder 'field'"):
        params_module.step_keys(params, "train")


def test_changed_keys_names_what_an_override_changed():
    from spectnet.params import changed_keys
    base = load_params(REPO / "params.yaml")
    assert changed_keys(base, base) == []
    changed = load_params(REPO / "params.yaml", overrides={
        "preprocess": {"lowpass_hz": "300", "highpass_hz": "25"},
        "segmentation": {"plot_records": ["a0001"]}})
    assert changed_keys(base, changed) == ["preprocess.lowpass_hz",
                                           "segmentation.plot_records"]


def test_overrides_follow_references_and_additional_properties():
    schema = {"$defs": {"block": {"type": "object", "properties": {"epochs": {"type": "integer"},
                                                                   "name": {"type": "string"}}}},
              "type": "object",
              "properties": {"scales": {"type": "object",
                                        "additionalProperties": {"$ref": "#/$defs/block"}}}}
    assert coerce_overrides({"scales": {"quick": {"epochs": "3", "name": "7"}}}, root=schema) \
        == {"scales": {"quick": {"epochs": 3, "name": "7"}}}

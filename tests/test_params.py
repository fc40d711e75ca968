"""params.yaml, its schema, and the typed configs."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from conftest import REPO
from spectnet.config import Params, PhysioNetConfig, PreprocessConfig
from spectnet.params import (STEP_PARAMS, ParamsError, load_params, load_schema,
                             params_slice, read_params_argument, validate_params)


def test_repository_params_are_valid_and_complete():
    params = load_params(REPO / "params.yaml")
    assert params["preprocess"]["sample_rate"] == 1000
    assert params["physionet"]["folds"]["source"] == "auto"


def test_empty_params_get_every_default():
    params = validate_params(None)
    assert params == validate_params({})
    assert params["preprocess"]["lowpass_hz"] == 400
    assert params["physionet"]["on_bad_record"] == "fail"


@pytest.mark.parametrize("bad, key, phrase", [
    ({"preprocess": {"lowpass_hz": -5}}, "preprocess.lowpass_hz", "minimum"),
    ({"preprocess": {"resampler": "fft"}}, "preprocess.resampler", "is not one of"),
    ({"preprocess": {"filter_order": 2.5}}, "preprocess.filter_order", "integer"),
    ({"physionet": {"source": "ftp"}}, "physionet.source", "is not one of"),
    ({"physionet": {"url": "physionet.org"}}, "physionet.url", "does not match"),
    ({"physionet": {"on_bad_record": "ignore"}}, "physionet.on_bad_record", "is not one of"),
    ({"physionet": {"sorce": "local"}}, "physionet", "'sorce' was unexpected"),
    ({"scenes": {"dataset": "tut"}}, "scenes.dataset", "is not one of"),
    ({"scenes": {"data": {"dcase2016": {"source": "ftp"}}}}, "scenes.data.dcase2016.source",
     "is not one of"),
    ({"scenes": {"units": {"esc10": {"mode": "window"}}}}, "scenes.units.esc10.mode",
     "is not one of"),
    ({"scenes": {"on_bad_clip": "ignore"}}, "scenes.on_bad_clip", "is not one of"),
    ({"cpu_autocast": "fp16"}, "cpu_autocast", "is not one of"),
])
def test_invalid_value_names_key_and_steps(bad, key, phrase):
    with pytest.raises(ParamsError) as err:
        validate_params(bad)
    message = str(err.value)
    assert f": {key}: " in message and phrase in message
    steps = [s for s, keys in STEP_PARAMS.items()
             if any(k == key or k.startswith(key + ".") or key.startswith(k + ".")
                    for k in keys)]
    assert steps and all(step in message for step in steps)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ParamsError) as err:
        validate_params({"preprocess": {"lowpass_hz": 0, "highpass_hz": "x"}})
    assert "lowpass_hz" in str(err.value) and "highpass_hz" in str(err.value)


def test_cross_key_constraint():
    with pytest.raises(ParamsError, match=r"highpass_hz \(25\) < preprocess.lowpass_hz \(600\)"):
        validate_params({"preprocess": {"lowpass_hz": 600}})


def test_scene_cross_key_constraints():
    for task in ("heart_sounds", "scenes"):
        with pytest.raises(ParamsError, match=rf"{task}.learnable.n_filters: \[47\] not in "
                                              rf"{task}.frontend.n_filters"):
            validate_params({task: {"learnable": {"n_filters": [47]}}})
    with pytest.raises(ParamsError) as err:
        validate_params({"scenes": {"units": {"esc50": {"length_s": 0.05}}}})
    assert "scenes.units.esc50.length_s (0.05) is shorter than the 1981 samples" in str(err.value)
    assert "read by: preprocess_scenes" in str(err.value)


def test_unreadable_params_file(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    (tmp_path / "p.yaml").write_text("preprocess: [1, 2")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "p.yaml")
    (tmp_path / "p.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="mapping"):
        load_params(tmp_path / "p.yaml")


def test_slice_holds_exactly_the_keys_a_step_reads():
    params = validate_params({})
    piece = params_slice(params, "preprocess_physionet")
    assert piece == {"preprocess": params["preprocess"],
                     "physionet": {"on_bad_record": "fail"}}


def test_cli_params_argument_accepts_json_slice_and_file(tmp_path):
    from_json = read_params_argument('{"preprocess": {"lowpass_hz": 300}}')
    assert from_json["preprocess"]["lowpass_hz"] == 300
    (tmp_path / "p.yaml").write_text("preprocess: {lowpass_hz: 350}\n")
    assert read_params_argument(str(tmp_path / "p.yaml"))["preprocess"]["lowpass_hz"] == 350
    with pytest.raises(ParamsError, match="not valid JSON"):
        read_params_argument("{oops")


def _schema_defaults(schema):
    return {name: (_schema_defaults(sub) if sub.get("type") == "object" else sub["default"])
            for name, sub in schema["properties"].items()}


def test_dataclass_defaults_equal_schema_defaults():
    assert Params().to_dict() == _schema_defaults(load_schema())


def test_params_round_trip_through_yaml():
    params = Params(preprocess=PreprocessConfig(lowpass_hz=300, resampler="polyphase"),
                    physionet=PhysioNetConfig(source="local", on_bad_record="skip"))
    assert Params.from_yaml(params.to_yaml()) == params
    assert yaml.safe_load(params.to_yaml())["preprocess"]["lowpass_hz"] == 300


def test_configs_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PreprocessConfig().lowpass_hz = 1


def test_cpu_autocast_is_float32_by_default_and_reruns_only_training(tmp_path):
    assert validate_params({})["cpu_autocast"] == "float32" == Params().cpu_autocast
    assert load_params(REPO / "params.yaml")["cpu_autocast"] == "float32"
    for value in ("float32", "bf16", "auto"):
        assert validate_params({"cpu_autocast": value})["cpu_autocast"] == value
        assert Params.from_dict({"cpu_autocast": value}).cpu_autocast == value
    # YAML reads an unquoted `off` as false: refused, naming the key, the values and readers
    (tmp_path / "p.yaml").write_text("cpu_autocast: off\n")
    with pytest.raises(ParamsError) as err:
        load_params(tmp_path / "p.yaml")
    message = str(err.value)
    assert (": cpu_autocast: False is not one of ['float32', 'bf16', 'auto'] (YAML reads an "
            "unquoted on/off/yes/no as true/false)") in message
    assert "train_static_physionet" in message and "train_static_scenes" in message
    # every training step reads it (a change reruns them); evaluation reads the model file
    params = validate_params({"cpu_autocast": "auto"})
    readers = {step for step in STEP_PARAMS
               if params_slice(params, step, {"n": "16", "seed": "1"}).get("cpu_autocast")}
    assert readers == {step for step in STEP_PARAMS if step.startswith("train_")}

"""Typed views of the validated parameters, one dataclass per params.yaml section.

The schema (``workflow/schemas/params.schema.yaml``) is the authority on names, ranges
and defaults; these dataclasses give the code attribute access and type checking, and
round-trip to YAML (``Params.from_yaml(p.to_yaml()) == p``). Their defaults equal the
schema's (a test enforces it), so a config built in Python behaves like one read from
a params file.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from spectnet.params import load_params, validate_params


class _Section:
    """YAML/dict round-tripping shared by every config dataclass."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value, kind = data[f.name], hints[f.name]
            kwargs[f.name] = kind.from_dict(value) if isinstance(kind, type) and issubclass(
                kind, _Section) else value
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


@dataclass(frozen=True)
class FoldsConfig(_Section):
    """Where the paper's fold lists come from."""
    source: str = "auto"
    local_path: str = "../shared/data/physionet2016/folds"


@dataclass(frozen=True)
class PhysioNetConfig(_Section):
    """Where the PhysioNet/CinC 2016 training set comes from."""
    source: str = "auto"
    local_path: str = "../shared/data/physionet2016"
    url: str = "https://physionet.org/files/challenge-2016/1.0.0/"
    folds: FoldsConfig = field(default_factory=FoldsConfig)
    on_bad_record: str = "fail"


@dataclass(frozen=True)
class PreprocessConfig(_Section):
    """Read, clip, resample and filter (REPRODUCTION.md §1.4)."""
    source_sample_rate: int = 2000
    max_duration_s: float = 60
    sample_rate: int = 1000
    resampler: str = "torchaudio"
    lowpass_hz: float = 400
    highpass_hz: float = 25
    filter_order: int = 2
    remove_spikes: bool = True


@dataclass(frozen=True)
class SegmentationConfig(_Section):
    """Springer LR-HSMM heart-sound segmentation (SEGMENTATION.md)."""
    emulate_underflow: bool = True
    plot_records: tuple[str, ...] = ("a0001", "b0001", "c0001", "d0001", "e00100", "f0001")

    def __post_init__(self):
        object.__setattr__(self, "plot_records", tuple(self.plot_records))

    def to_dict(self) -> dict:
        return {**super().to_dict(), "plot_records": list(self.plot_records)}


@dataclass(frozen=True)
class BeatsConfig(_Section):
    """Cutting cardiac cycles into fixed-length beats (REPRODUCTION.md §1.5)."""
    beat_length: int = 2500
    emulate_zero_last_beat: bool = False


@dataclass(frozen=True)
class Params(_Section):
    """All parameters of the pipeline."""
    physionet: PhysioNetConfig = field(default_factory=PhysioNetConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    beats: BeatsConfig = field(default_factory=BeatsConfig)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name).to_dict() for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Params":
        """Validate ``data`` against the schema (filling defaults) and build the config."""
        return super().from_dict(validate_params(data))

    @classmethod
    def from_yaml(cls, text: str) -> "Params":
        return cls.from_dict(yaml.safe_load(text))

    @classmethod
    def load(cls, path: str | Path = "params.yaml") -> "Params":
        return super().from_dict(load_params(path))

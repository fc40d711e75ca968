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
from typing import Any, Mapping, Optional

import yaml

from spectnet.params import load_params, load_schema, validate_params


def _plain(value):
    if isinstance(value, _Section):
        return value.to_dict()
    return list(value) if isinstance(value, tuple) else value


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
            if isinstance(kind, type) and issubclass(kind, _Section):
                value = kind.from_dict(value)
            elif typing.get_origin(kind) is tuple:
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict:
        """Plain YAML-ready values: nested sections as dicts, tuples as lists."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

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


@dataclass(frozen=True)
class BeatsConfig(_Section):
    """Cutting cardiac cycles into fixed-length beats (REPRODUCTION.md §1.5)."""
    beat_length: int = 2500
    emulate_zero_last_beat: bool = False


@dataclass(frozen=True)
class Stage2Budget(_Section):
    """How long a stage-2 run is (learnable-N and its control take exactly these steps):
    epochs, batch size, batches per epoch."""
    epochs: int
    batch_size: int
    steps_per_epoch: int | None = None


@dataclass(frozen=True)
class Budget(Stage2Budget):
    """How long a stage-1 run is, and the epochs without a better selection score after
    which it stops (``None``: never)."""
    patience: int | None = None


@dataclass(frozen=True)
class HeartSoundsBudget(_Section):
    """The heart-sound experiments' size at one scale."""
    seeds: tuple[int, ...]
    comparison_seeds: tuple[int, ...]
    static: Budget
    learnable: Stage2Budget
    baselines: Budget
    dropout: float | None
    selection_subset: int | None
    bootstrap: int
    grid_epochs: int | None = None


@dataclass(frozen=True)
class ScenesBudget(_Section):
    """The scene experiments' size at one scale: which folds and seeds, and the stages."""
    folds: tuple[int, ...]
    seeds: tuple[int, ...]
    comparison_seeds: tuple[int, ...]
    static: Budget
    learnable: Stage2Budget
    selection_subset: int | None
    bootstrap: int
    grid_epochs: int | None = None


@dataclass(frozen=True)
class ScaleConfig(_Section):
    """One scale: the two tasks' budgets."""
    heart_sounds: HeartSoundsBudget
    scenes: ScenesBudget


@dataclass(frozen=True)
class ScalesConfig(_Section):
    """full = the paper's settings (GPU; no dropout, see docs/deviations.md), quick = a
    CPU in about an hour, smoke = CI."""
    full: ScaleConfig = field(
        default_factory=lambda: ScaleConfig.from_dict(_SCALE_DEFAULTS["full"]))
    quick: ScaleConfig = field(
        default_factory=lambda: ScaleConfig.from_dict(_SCALE_DEFAULTS["quick"]))
    smoke: ScaleConfig = field(
        default_factory=lambda: ScaleConfig.from_dict(_SCALE_DEFAULTS["smoke"]))


@dataclass(frozen=True)
class SelectionConfig(_Section):
    """Where recipes, early stopping and the kept epoch are chosen: ``inner`` (a
    record-disjoint split of the training fold) or ``reporting`` (the authors' A21)."""
    split: str = "inner"
    inner_fraction: float = 0.15
    seed: int = 1


@dataclass(frozen=True)
class HeartSelectionConfig(SelectionConfig):
    """The heart-sound selection set; each recording scores its first ``beats_per_record``."""
    beats_per_record: int | None = 6


@dataclass(frozen=True)
class FrontendConfig(_Section):
    """The SpectNet layer of the heart-sound models (REPRODUCTION.md §2) and the static
    grid's filter counts."""
    n_filters: tuple[int, ...] = (4, 8, 16)
    init: str = "code"
    f_min: float = 0
    f_max: float | None = None
    kernel_size: int = 81
    win_length: int = 25
    hop_length: int = 10


@dataclass(frozen=True)
class ResNetConfig(_Section):
    dropout: float = 0.5
    quirks: bool = False


@dataclass(frozen=True)
class StaticStageConfig(_Section):
    """Stage 1: front-end frozen, Adam."""
    lr: float = 0.001
    lr_decay: float = 1.0
    warmup_steps: int = 100


@dataclass(frozen=True)
class LearnableStageConfig(_Section):
    """Stage 2 (learnable-N and its control), from static-N's selected model."""
    n_filters: tuple[int, ...] = (16,)
    variant: str = "paper"
    learn: tuple[str, ...] = ("f", "b", "a")
    parametrization: str = "relative"
    lr: float = 0.001
    frontend_lr: float = 0.03
    warmup_steps: int = 50


@dataclass(frozen=True)
class BaselinesConfig(_Section):
    """Gammatone 1D-CNN and 2D-CNN, trained as Heartnet was."""
    n_filters: int = 4
    learn_filters: bool = True
    bandwidth: float = 30.0
    amplitude: float = 1e5
    lr: float = 0.0012843784
    lr_decay: float = 0.0001132885
    warmup_steps: int = 0
    l2: float = 0.0486
    dropout: float = 0.5


@dataclass(frozen=True)
class EvaluationConfig(_Section):
    model: str = "best"
    ci_level: float = 0.95


@dataclass(frozen=True)
class HeartSoundsConfig(_Section):
    """Table II: heart-sound abnormality detection."""
    fold: int = 0
    sampler: str = "double_balanced"
    selection: HeartSelectionConfig = field(default_factory=HeartSelectionConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    resnet: ResNetConfig = field(default_factory=ResNetConfig)
    static: StaticStageConfig = field(default_factory=StaticStageConfig)
    learnable: LearnableStageConfig = field(default_factory=LearnableStageConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)


@dataclass(frozen=True)
class DcaseDataConfig(_Section):
    """Where the TUT Acoustic Scenes 2016 development set comes from."""
    source: str = "auto"
    local_path: str = "../shared/data/dcase2016"
    url: str = "https://zenodo.org/records/45739/files/"


@dataclass(frozen=True)
class Esc10DataConfig(_Section):
    """ESC-10 in its original layout (one ``NNN - Class`` folder per class)."""
    local_path: str = "../shared/data/esc10"


@dataclass(frozen=True)
class Esc50DataConfig(_Section):
    """ESC-50 in its official layout (``meta/esc50.csv``, ``audio/``)."""
    local_path: str = "../shared/data/ESC-50"
    subset: str = "all"


@dataclass(frozen=True)
class FolderDataConfig(_Section):
    """A folder per class; folds assigned by stratified k-fold."""
    local_path: str = "data/external/clips"
    n_folds: int = 5
    seed: int = 1


@dataclass(frozen=True)
class CsvDataConfig(_Section):
    """A metadata CSV with file, label and (optional) fold columns."""
    path: str = "data/external/clips.csv"
    audio_root: Optional[str] = None
    n_folds: int = 5
    seed: int = 1


@dataclass(frozen=True)
class ScenesDataConfig(_Section):
    """Where each labelled-clip data set comes from."""
    dcase2016: DcaseDataConfig = field(default_factory=DcaseDataConfig)
    esc10: Esc10DataConfig = field(default_factory=Esc10DataConfig)
    esc50: Esc50DataConfig = field(default_factory=Esc50DataConfig)
    folder: FolderDataConfig = field(default_factory=FolderDataConfig)
    csv: CsvDataConfig = field(default_factory=CsvDataConfig)


@dataclass(frozen=True)
class UnitConfig(_Section):
    """How clips are cut into fixed-length units: ``segment`` (non-overlapping
    ``length_s`` pieces, the remainder dropped) or ``clip`` (the whole clip, zero-padded
    or truncated to ``length_s``)."""
    mode: str = "clip"
    length_s: float = 5.0


@dataclass(frozen=True)
class UnitsConfig(_Section):
    """Unit settings per data set."""
    dcase2016: UnitConfig = field(default_factory=lambda: UnitConfig("segment", 10.0))
    esc10: UnitConfig = field(default_factory=UnitConfig)
    esc50: UnitConfig = field(default_factory=UnitConfig)
    folder: UnitConfig = field(default_factory=UnitConfig)
    csv: UnitConfig = field(default_factory=UnitConfig)


@dataclass(frozen=True)
class SceneFrontendConfig(_Section):
    """SpectNet front-end of the scene experiments (REPRODUCTION.md §6), in samples, and
    the static grid's filter counts."""
    kernel_size: int = 551
    win_length: int = 551
    hop_length: int = 220
    n_filters: tuple[int, ...] = (16, 32, 46, 64, 128, 149)


@dataclass(frozen=True)
class SceneStaticStageConfig(StaticStageConfig):
    """Stage 1 of the scene models (REPRODUCTION.md §4.2: Adam, batch 64; the paper's lr
    0.005 overshoots, 0.001 with a warm-up was chosen on the inner split)."""
    lr: float = 0.001
    warmup_steps: int = 48


@dataclass(frozen=True)
class SceneLearnableStageConfig(_Section):
    """Stage 2 of the scene models (learnable-N and its control), from static-N."""
    n_filters: tuple[int, ...] = (46,)
    learn: tuple[str, ...] = ("f", "b", "a")
    parametrization: str = "relative"
    lr: float = 0.001
    frontend_lr: float = 0.03
    warmup_steps: int = 12


@dataclass(frozen=True)
class ScenesConfig(_Section):
    """Acoustic scenes and other labelled clips (REPRODUCTION.md §6)."""
    dataset: str = "auto"
    data: ScenesDataConfig = field(default_factory=ScenesDataConfig)
    on_bad_clip: str = "fail"
    sample_rate: int = 22050
    min_clip_s: float = 1.0
    units: UnitsConfig = field(default_factory=UnitsConfig)
    frontend: SceneFrontendConfig = field(default_factory=SceneFrontendConfig)
    sampler: str = "shuffled"
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    static: SceneStaticStageConfig = field(default_factory=SceneStaticStageConfig)
    learnable: SceneLearnableStageConfig = field(default_factory=SceneLearnableStageConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)

    def unit(self, dataset: str) -> UnitConfig:
        """The unit settings of ``dataset`` (``dcase2016``, ``esc10``, ...)."""
        return getattr(self.units, dataset)


@dataclass(frozen=True)
class Params(_Section):
    """All parameters of the pipeline."""
    scale: str = "quick"
    cpu_autocast: str = "float32"
    scales: ScalesConfig = field(default_factory=ScalesConfig)
    physionet: PhysioNetConfig = field(default_factory=PhysioNetConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    beats: BeatsConfig = field(default_factory=BeatsConfig)
    heart_sounds: HeartSoundsConfig = field(default_factory=HeartSoundsConfig)
    scenes: ScenesConfig = field(default_factory=ScenesConfig)

    @property
    def active_scale(self) -> ScaleConfig:
        """The block of ``scales`` that ``scale`` selects."""
        return getattr(self.scales, self.scale)


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


#: The scales' budgets by default, read from the schema (the one place they are written).
_SCALE_DEFAULTS = {name: block["default"] for name, block in
                   load_schema()["properties"]["scales"]["properties"].items()}

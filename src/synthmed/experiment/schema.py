"""The experiment file (EXPERIMENT.toml): read, merge a profile and --set overrides, validate against the stages."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from synthmed.experiment.overrides import apply_overrides
from synthmed.experiment.toml_files import load_toml, merge
from synthmed.models.config import (
    DEFAULT_OBJECTIVE,
    FLOW_PREDICTION,
    LATENT_DEFAULT_OBJECTIVE,
    Objective,
    resolve_objective,
)

DATA_ROOT_ENV = "SYNTHMED_DATA_ROOT"
"""Environment variable that overrides the file's `data_root` (a `--set data_root=...` overrides both)."""

# Keys of each stage's own config that the runner fills in itself (not settable in the file).
RUNNER_OWNED = {
    "prepare": {"overwrite"},
    "train": {"dataset", "model"},
    "sample": {"model_dir", "out_dir"},
    "evaluate": {"real_dir", "synthetic_dir", "out_dir"},
}
# TSTRConfig fields that EvalConfig fills from its own keys (tstr_archs, ..., the dataset's size).
TSTR_FROM_EVAL = {"archs", "seeds", "epochs", "image_size_px", "weights_dir", "max_train_images"}


class DataSection(BaseModel):
    """Which images: a raw `source` to prepare (with `prepare` options) or an already `prepared` dataset.

    Relative paths are relative to `data_root`; `source = "phantom"` renders the built-in chest phantom.
    """

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(None, description="raw folder / DICOM / NIfTI / .npz to prepare, or 'phantom'")
    prepared: str | None = Field(None, description="a dataset already prepared by `synthmed prepare`")
    prepare: dict[str, Any] = Field(default_factory=dict, description="PrepareConfig fields (synthmed prepare)")
    phantom_n_per_class: int = Field(200, ge=2, description="phantom images per condition (source = 'phantom')")

    @model_validator(mode="after")
    def _one_source(self) -> DataSection:
        if (self.source is None) == (self.prepared is None):
            raise ValueError("give exactly one of data.source (a raw folder to prepare) or data.prepared.")
        if self.prepared is not None and self.prepare:
            raise ValueError("data.prepare options apply to data.source only; remove them or use data.source.")
        return self


class _OpenSection(BaseModel):
    """A table whose other keys are fields of a stage's own config (checked by `check_stage_options`)."""

    model_config = ConfigDict(extra="allow")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TrainSection(_OpenSection):
    """The diffusion model and its budget: `family`, `preset`, `objective`, `model` (DiffusionModelConfig
    overrides) and any TrainConfig field (max_steps, max_duration_min, batch_size, lr, ...).

    `family = "latent"` trains an autoencoder (the `autoencoder` table: an AE_PRESETS `preset`, AutoencoderConfig
    and AETrainConfig fields) and then a latent UNet (`preset` one of the latent UNET_PRESETS; the other keys are
    LatentTrainConfig fields) instead of the pixel UNet.

    Flow matching has no min-SNR weighting: its `snr_gamma` is dropped from the resolved settings (and
    reported in `ExperimentConfig.notes`), as `synthmed train --objective flow_matching` stores none.
    """

    family: Literal["pixel", "latent"] = Field(
        "pixel", description="pixel (UNet on the images) or latent (autoencoder + UNet on its latents)"
    )
    preset: str | None = Field(
        None,
        description="pixel: tiny, 32, 64, 64-cpu, 128, 128-cpu or 256 (default: the dataset's size); "
        "latent: tiny, 16-cpu, 32 or 64",
    )
    objective: Objective = Field(
        DEFAULT_OBJECTIVE,
        description="flow_matching (rectified flow; the pixel default) or diffusion (v-prediction, min-SNR; the "
        "latent default, and meant when train.model.prediction_type or snr_gamma is given without an objective)",
    )
    model: dict[str, Any] = Field(default_factory=dict, description="DiffusionModelConfig fields (pixel)")
    autoencoder: dict[str, Any] = Field(
        default_factory=dict, description="latent: preset (tiny, f4, f8), AutoencoderConfig + AETrainConfig fields"
    )
    _ignored: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _objective_fits_model(self) -> TrainSection:
        if self.autoencoder and not self.latent:
            raise ValueError(
                "[train.autoencoder] is for family 'latent'; set train.family = 'latent' or remove the table."
            )
        given = self.model.get("prediction_type")
        if "objective" not in self.model_fields_set:
            snr_gamma = (self.model_extra or {}).get("snr_gamma")
            default = LATENT_DEFAULT_OBJECTIVE if self.latent else DEFAULT_OBJECTIVE
            self.objective = resolve_objective(None, prediction_type=given, snr_gamma=snr_gamma, default=default)
        if self.flow:
            if given not in (None, FLOW_PREDICTION):
                raise ValueError(
                    f"objective flow_matching trains the flow velocity; remove train.model.prediction_type = "
                    f"{given!r} (it is for objective diffusion)."
                )
            if self.model_extra and "snr_gamma" in self.model_extra:
                self._ignored["snr_gamma"] = self.model_extra.pop("snr_gamma")
        elif given == FLOW_PREDICTION:
            raise ValueError(
                f"train.model.prediction_type {FLOW_PREDICTION!r} is flow matching: set objective instead."
            )
        return self

    @property
    def latent(self) -> bool:
        """True for family latent (autoencoder + latent UNet)."""
        return self.family == "latent"

    @property
    def flow(self) -> bool:
        """True for objective flow_matching."""
        return self.objective == "flow_matching"

    def model_overrides(self) -> dict[str, Any]:
        """DiffusionModelConfig overrides: `model`, with the flow prediction type under flow matching."""
        return {**self.model, "prediction_type": FLOW_PREDICTION} if self.flow else dict(self.model)

    def notes(self) -> list[str]:
        """Settings given in the file that this objective ignores."""
        return [
            f"[train] {key} = {value} is ignored: objective flow_matching has no min-SNR weighting"
            for key, value in self._ignored.items()
        ]


class StageSection(_OpenSection):
    """A stage that can be switched off (`enabled = false`); every other key is a field of its config."""

    enabled: bool = True


class ReportSection(BaseModel):
    """The HTML report of the evaluation."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    title: str | None = None


class ExperimentConfig(BaseModel):
    """One study arm: data -> train -> sample -> evaluate -> report [-> reader-study setup]."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="names the default run folder")
    description: str = ""
    data_root: str = Field(".", description=f"base of relative data paths; ${DATA_ROOT_ENV} overrides it")
    seed: int = Field(0, ge=0, lt=2**63, description="seeds every stage; 0 <= seed < 2**63 (torch's seed range)")
    data: DataSection
    train: TrainSection
    sample: StageSection = Field(default_factory=StageSection)
    evaluate: StageSection = Field(default_factory=StageSection)
    report: ReportSection = Field(default_factory=ReportSection)
    study: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="reader studies to set up, by name: StudySpec fields (synthmed study create)"
    )
    profile: dict[str, dict[str, Any]] = Field(default_factory=dict, description="[profile.NAME] override tables")

    @model_validator(mode="after")
    def _stages_accept_their_options(self) -> ExperimentConfig:
        check_stage_options(self)
        return self


def _error_parts(exc: ValidationError, section: str = "") -> list[str]:
    """'[section] key: message' for each error (unknown keys say so and where the keys are listed)."""
    parts = []
    for error in exc.errors():
        key = ".".join(str(x) for x in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            message = "unknown key (check its spelling against the keys in docs/experiments.md)"
        given = error.get("input")
        if error.get("type") in ("string_type", "literal_error") and isinstance(given, int | float):
            message += f' (quote it: "{given}"; unquoted, TOML and YAML read {given} as a number)'
        where = " ".join(x for x in (f"[{section}]" if section else "", key) if x)
        parts.append(f"{where}: {message}" if where else message)
    return parts


def stage_error(section: str, exc: ValidationError) -> ValueError:
    return ValueError("; ".join(_error_parts(exc, section)) + " (fix it in the experiment file or with --set)")


def _validate(section: str, cls: type[BaseModel], options: dict[str, Any], **filled: Any) -> BaseModel:
    owned = RUNNER_OWNED.get(section, set()) & set(options)
    if owned:
        raise ValueError(f"[{section}] {', '.join(sorted(owned))}: set by `synthmed run` itself; remove it.")
    try:
        return cls(**filled, **options)
    except ValidationError as exc:
        raise stage_error(section, exc) from None


def check_stage_options(config: ExperimentConfig) -> None:
    """Validate every stage's options with the stage's own config class (placeholders for runner-filled paths)."""
    from synthmed.data.prepare import PrepareConfig
    from synthmed.evaluate.classifiers import ARCHS
    from synthmed.evaluate.run import EvalConfig
    from synthmed.evaluate.tstr import TSTRConfig
    from synthmed.sample.generate import SampleConfig
    from synthmed.study.blinding import StudySpec
    from synthmed.train.config import TrainConfig

    prepare = _validate("data.prepare", PrepareConfig, config.data.prepare)
    assert isinstance(prepare, PrepareConfig)
    disabled = {} if config.sample.enabled or "n_per_class" in config.sample.options else {"n_per_class": 1}
    if config.train.latent:
        from synthmed.experiment.latent import LatentSampleConfig, check_latent

        channels = 3 if prepare.channels == "3" else 1  # "auto" decides on the data: grey as a placeholder
        check_latent(config, size_px=prepare.size_px, channels=channels)
        _validate("sample", LatentSampleConfig, config.sample.options, model_dir="-", out_dir="-", **disabled)
    else:
        model = _check_model(config)
        _validate("train", TrainConfig, config.train.options, dataset="-", model=model)
        _validate("sample", SampleConfig, config.sample.options, model_dir="-", out_dir="-", **disabled)
    _check_sampler_fits(config)
    evaluation = _validate(
        "evaluate", EvalConfig, config.evaluate.options, real_dir="-", synthetic_dir="-", out_dir="-"
    )
    assert isinstance(evaluation, EvalConfig)
    unknown_archs = [a for a in evaluation.tstr_archs if a not in ARCHS]
    if unknown_archs:
        raise ValueError(f"[evaluate] tstr_archs: unknown {unknown_archs}; choose from {list(ARCHS)}.")
    tstr_overrides = dict(config.evaluate.options.get("tstr_overrides") or {})
    taken = TSTR_FROM_EVAL & set(tstr_overrides)
    if taken:
        raise ValueError(
            f"[evaluate] tstr_overrides: {', '.join(sorted(taken))} come from evaluate's own keys "
            f"(tstr_archs, tstr_seeds, tstr_epochs, tstr_weights_dir, tstr_max_train_images; the size is the "
            f"dataset's or evaluate.size_px); set those instead."
        )
    from_eval = {"archs": evaluation.tstr_archs, "seeds": evaluation.tstr_seeds, "epochs": evaluation.tstr_epochs}
    _validate("evaluate.tstr_overrides", TSTRConfig, tstr_overrides, **from_eval)
    for name, spec in config.study.items():
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"[study.{name}]: study names are letters, digits, - and _ (a folder is made per name).")
        _validate(f"study.{name}", StudySpec, spec)


def _check_model(config: ExperimentConfig) -> Any:
    """The [train] preset with the train.model overrides, built as a model config (and as a UNet on the meta
    device, which allocates nothing), so a model the training stage could not build is refused now. The image
    size, channels and classes are placeholders until the dataset is prepared."""
    import torch

    from synthmed.models.config import PRESET_SIZES_PX, PRESETS, DiffusionModelConfig, preset_config
    from synthmed.models.unet import build_unet

    unknown = set(config.train.model) - set(DiffusionModelConfig.model_fields)
    if unknown:
        raise ValueError(f"[train.model] {', '.join(sorted(unknown))}: unknown key (a DiffusionModelConfig field).")
    preset = config.train.preset or "tiny"
    if preset not in PRESETS:
        raise ValueError(f"[train] preset {preset!r}: unknown; choose one of {list(PRESETS)} (or leave it out).")
    levels = len(config.train.model.get("block_out_channels") or PRESETS[preset]["block_out_channels"])
    size_px = max(PRESET_SIZES_PX.get(preset) or 32, 2 ** (levels - 1))
    try:
        model = preset_config(
            preset, image_size_px=size_px, in_channels=1, num_classes=2, **config.train.model_overrides()
        )
    except ValidationError as exc:
        raise stage_error("train.model", exc) from None
    attended = [c for c, a in zip(model.block_out_channels, model.attention_levels, strict=True) if a]
    narrow = [c for c in {*attended, model.block_out_channels[-1]} if c < model.attention_head_dim]
    if min(model.block_out_channels) < 1 or narrow:
        raise ValueError(
            f"[train.model] block_out_channels {model.block_out_channels}: every entry must be >= 1, and those "
            f"with attention (and the last, the middle block's) >= attention_head_dim {model.attention_head_dim} "
            f"(heads = channels // attention_head_dim); widen them or lower attention_head_dim."
        )
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "zero-element tensors": meta tensors hold no data
            build_unet(model)
    except (ValueError, ZeroDivisionError, RuntimeError) as exc:
        raise ValueError(f"[train.model]: the UNet cannot be built from these settings: {exc}") from None
    return model


def _check_sampler_fits(config: ExperimentConfig) -> None:
    """An explicit [sample] sampler must suit the training objective (flow samplers for flow matching only)."""
    from synthmed.models.sampling import SAMPLERS, sampler_name

    given = config.sample.options.get("sampler")
    if given is None or SAMPLERS[sampler_name(given)].flow == config.train.flow:
        return
    fitting = sorted(name for name, spec in SAMPLERS.items() if spec.flow == config.train.flow)
    raise ValueError(
        f"[sample] sampler {given!r} does not fit [train] objective {config.train.objective!r}: choose one of "
        f"{fitting}, or leave sampler out for the objective's default."
    )


# Reading, profiles and overrides.


def read_experiment(
    path: str | Path,
    *,
    profile: str | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> tuple[ExperimentConfig, Path]:
    """The validated experiment: the file (over the one it `extends`), `profile`'s table merged over it, then
    $SYNTHMED_DATA_ROOT and `overrides` ('key.sub=value'); returns it with the data root made absolute
    (a relative data_root is relative to the experiment file's folder)."""
    path = Path(path)
    raw = load_toml(path)
    profiles = raw.get("profile", {})
    if profile is not None and profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none (add a [profile.NAME] table)"
        raise ValueError(f"--profile {profile!r}: {path.name} defines no such profile; it has: {known}.")
    for name, table in profiles.items():  # a typo in a profile not chosen today is still an error today
        if not isinstance(table, dict):
            raise ValueError(f"[profile.{name}] must be a table of overrides.")
        if name != profile:
            _checked(merge(raw, table), f"{path.name} with --profile {name}")
    if profile is not None:
        raw = merge(raw, profiles[profile])
    env: Mapping[str, str] = os.environ if environ is None else environ
    if env.get(DATA_ROOT_ENV):
        raw["data_root"] = env[DATA_ROOT_ENV]
    apply_overrides(raw, overrides, schema=ExperimentConfig)
    config = _checked(raw, path.name + (f" with --profile {profile}" if profile else ""))
    root = Path(config.data_root).expanduser()
    root = root if root.is_absolute() else path.resolve().parent / root
    return config, root.resolve()


def _checked(raw: dict[str, Any], where: str) -> ExperimentConfig:
    """`raw` validated; errors become one ValueError naming each key (pydantic's location, or the stage's)."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{where}: " + "; ".join(_error_parts(exc))) from None


def data_path(root: Path, value: str) -> Path:
    """`value` as a path: absolute or ~ paths as given, others under the data root."""
    given = Path(value).expanduser()
    return given if given.is_absolute() else root / given

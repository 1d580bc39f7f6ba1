"""Write the model card (README.md, Hugging Face style) of a pixel diffusion model folder."""

from __future__ import annotations

from synthmed.models.config import FLOW_PREDICTION, DiffusionModelConfig

LICENSE_PLACEHOLDER = "other"  # set by whoever publishes the model: it follows the training data's licence


def _metrics_table(metrics: dict) -> str:
    if not metrics:
        return (
            "Not measured when this folder was written. Run `synthmed evaluate` on images sampled from it "
            "(fidelity, diversity, memorisation, usefulness) and keep that report beside the model."
        )
    rows = "\n".join(f"| {name} | {value} |" for name, value in sorted(metrics.items()))
    return f"| metric | value |\n|---|---|\n{rows}"


def _objective(config: DiffusionModelConfig) -> str:
    if config.prediction_type == FLOW_PREDICTION:
        return (
            "flow matching (rectified flow: x_t = (1 - t) x0 + t noise, the UNet predicts noise - x0 "
            f"and sees t * {config.num_train_timesteps})"
        )
    return (
        f"diffusion, {config.prediction_type}; noise schedule: {config.beta_schedule}, "
        f"{config.num_train_timesteps} steps"
    )


def _diffusers_loop(config: DiffusionModelConfig) -> str:
    """Python lines sampling the folder with diffusers alone (a DDPM loop, or flow Euler for flow models)."""
    if config.prediction_type == FLOW_PREDICTION:
        scheduler = (
            "from diffusers import FlowMatchEulerDiscreteScheduler\n\n"
            f"scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps={config.num_train_timesteps})"
            "  # a flow model: not pipe.scheduler\nscheduler.set_timesteps(20)"
        )
    else:
        scheduler = "scheduler = pipe.scheduler\nscheduler.set_timesteps(1000)"
    return scheduler


def model_card(config: DiffusionModelConfig, meta: dict) -> str:
    """The README.md text for a model folder: data, recipe, metrics, synthetic outputs, intended use, licence.

    `meta` holds synthmed's metadata (e.g. `step`, `weights`, `dataset`, optional `metrics` dict);
    missing entries are written as 'unknown'.
    """
    dataset = meta.get("dataset") or "unknown"
    classes = config.class_names or [str(i) for i in range(config.num_classes)]
    class_list = ", ".join(f"{i} = {name}" for i, name in enumerate(classes))
    levels = ", ".join(
        f"{c}{' (attention)' if a else ''}"
        for c, a in zip(config.block_out_channels, config.attention_levels, strict=True)
    )
    channels = "grey (1 channel)" if config.in_channels == 1 else "RGB (3 channels)"
    return f"""---
license: {LICENSE_PLACEHOLDER}
library_name: diffusers
pipeline_tag: unconditional-image-generation
tags:
- synthmed
- medical-imaging
- synthetic-data
- class-conditional
- ddpm
---

# synthmed class-conditional diffusion model ({dataset})

A class-conditional pixel diffusion model (diffusers `UNet2DModel` + `DDPMScheduler`) trained by
synthmed on the prepared dataset **{dataset}**. **Every image it produces is
synthetic**: it shows no real patient, and it must be labelled as synthetic wherever it is used.

## Data

- Dataset: {dataset} (a folder prepared with `synthmed prepare`; see its dataset.json for source and splits)
- Images: {config.image_size_px} x {config.image_size_px} px, {channels}
- Classes ({config.num_classes}): {class_list}

## Training recipe

- Training step of these weights: {meta.get("step", "unknown")}; weights: {meta.get("weights", "unknown")}
- UNet levels (channels): {levels}; {config.layers_per_block} ResNet layer(s) per level
- Objective: {_objective(config)}
- Classifier-free guidance: labels dropped with probability {config.class_dropout_prob} in training;
  class index {config.null_class} is the null (unconditional) class

## Metrics

{_metrics_table(meta.get("metrics") or {})}

## Use

With synthmed: `synthmed sample THIS_FOLDER --n-per-class 100 --out synthetic/` (samplers, guidance, DICOM output,
provenance manifest).

With diffusers alone: the UNet needs `class_labels` at every call (0..{config.num_classes - 1}, or
{config.null_class} for unconditional), so `DDPMPipeline.__call__`, which passes none, cannot sample it.
Load the parts and run the loop:

```python
import torch
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("THIS_FOLDER")  # DDPMPipeline: pipe.unet, pipe.scheduler
unet = pipe.unet.eval()
{_diffusers_loop(config)}
labels = torch.tensor([0, 1])  # one class index per image
x = torch.randn(len(labels), {config.in_channels}, {config.image_size_px}, {config.image_size_px})
with torch.no_grad():
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t, class_labels=labels).sample, t, x).prev_sample
images = (x.clamp(-1, 1) + 1) / 2  # [0, 1]
```

## Intended use

Research on synthetic medical data: augmenting or balancing training sets, method development,
teaching and reader studies. Not for diagnosis or any clinical decision, and not a substitute for
real data in validation. Check memorisation (`synthmed evaluate`) before sharing outputs: a model
can reproduce training images.

## Licence

`{LICENSE_PLACEHOLDER}`: a placeholder. Set the licence before publishing; it must respect the licence
and data-use terms of the training dataset.

## Files

- `model_index.json`, `unet/`, `scheduler/`: the diffusers pipeline (`DiffusionPipeline.from_pretrained`)
- `synthmed.json`: synthmed's metadata (model config, step, weights, dataset)
"""

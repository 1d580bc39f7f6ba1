"""Flow matching vs v-prediction (cosine, min-SNR-5) at equal training time, scored by the fidelity panels.

    nice -n 5 .venv/bin/python bench/objective_compare.py run --data bench/out/pneumonia/data --tag pneumonia32 \
        --cpu-min 2.5 --batch-size 32 --n-per-class 64
    nice -n 5 .venv/bin/python bench/objective_compare.py run --data bench/out/brain64/data --tag brain64 --preset 64 \
        --cpu-min 3 --batch-size 32 --n-per-class 48 --steps 20 --model-overrides '{"block_out_channels":
        [16, 32, 64, 64], "layers_per_block": 1, "attention_levels": [false, false, false, true]}'
    .venv/bin/python bench/objective_compare.py report pneumonia32 brain64 --command "..." --summary "..."

`run` trains both arms in one process from the same initial weights, data order and recipe (TrainConfig
defaults: AdamW 1e-3, warmup + cosine over the budget, EMA, class balance), differing only in the
objective. Equal time on a shared machine: the arms alternate in short chunks and each chunk is charged its
process CPU seconds (one thread), so both get the same CPU budget whatever the other engineers' load does to
wall clock. Then each arm samples the same seeds (20 steps of its own sampler: dpmpp / flow_euler), the
better one (lower summed ratio over the panels) also at 4, 8 and 50 steps, and every set is scored with the
project's fidelity panels (intensity, texture, semantic: MMD^2 to real train as a multiple of the real
held-out floor; evaluate/panel_distance.py). Few-step quality: paired bootstrap (same seeds resampled
together) of MMD^2(k steps) / MMD^2(50 steps) per panel, summed over classes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_file import table, write_result  # noqa: E402

from synthmed.data.arrays import load_image_arrays  # noqa: E402
from synthmed.data.dataset import from_model_range, to_model_range  # noqa: E402
from synthmed.evaluate.encoder import EncoderSettings, load_or_train_domain_extractor  # noqa: E402
from synthmed.evaluate.lowlevel import panel_features  # noqa: E402
from synthmed.evaluate.panel_distance import (  # noqa: E402
    PanelDistanceConfig,
    Standardiser,
    _kernel,
    _Reference,
    compute_panel_distances,
)
from synthmed.models.pixel import PixelDiffusion  # noqa: E402
from synthmed.models.sampling import SAMPLERS, denoise, make_scheduler  # noqa: E402
from synthmed.train.batches import balanced_batch_indices  # noqa: E402
from synthmed.train.config import TrainConfig, train_config_for_dataset  # noqa: E402
from synthmed.train.loop import budget_progress, lr_factor  # noqa: E402
from synthmed.train.steps import ema_weights, optimizer_step  # noqa: E402

OUT = Path("bench/out/objective_compare")
ARMS = {"v_prediction": ("v_prediction", 5.0, "dpmpp"), "flow_matching": ("flow_prediction", None, "flow_euler")}
"""Arm -> (prediction_type, min-SNR gamma, its 20-step sampler)."""
PANELS = ("intensity", "texture", "semantic")


class Arm:
    """One objective's model, optimiser, EMA and random stream, trained in chunks and charged CPU seconds."""

    def __init__(self, config: TrainConfig):
        from diffusers.training_utils import EMAModel

        self.config = config
        self.model = PixelDiffusion.create(config.model, seed=config.seed, snr_gamma=config.snr_gamma)
        self.unet, self.scheduler = self.model.network, self.model.scheduler
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=config.lr, betas=config.adam_betas)
        self.ema = EMAModel(
            self.unet.parameters(),
            decay=config.ema_max_decay,
            use_ema_warmup=True,
            inv_gamma=config.ema_inv_gamma,
            power=config.ema_power,
            foreach=True,
        )
        self.generator = torch.Generator().manual_seed(config.seed * 1000)
        self.accelerator, self.params = Accelerator(mixed_precision="no", cpu=True), list(self.unet.parameters())
        self.step, self.cpu_s, self.wall_s, self.loss = 0, 0.0, 0.0, float("nan")

    def train(self, images: torch.Tensor, labels: np.ndarray, steps: int) -> None:
        """`steps` optimiser steps of the training loop's recipe (its batch, label dropout, lr, clip, EMA)."""
        cfg, cpu0, wall0 = self.config, time.process_time(), time.perf_counter()
        label_tensor = torch.from_numpy(labels.astype(np.int64))
        for _ in range(steps):
            index = balanced_batch_indices(
                labels, cfg.batch_size, seed=cfg.seed, step=self.step, power=cfg.class_balance_power
            )
            progress = budget_progress(cfg, step=self.step, elapsed_s=self.cpu_s + time.process_time() - cpu0)
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg, step=self.step, progress=progress)
            batch = (to_model_range(images[index]), label_tensor[index])
            loss = self.model.loss(batch, generator=self.generator)["loss"]  # label dropout + the objective
            optimizer_step(
                self.accelerator, self.optimizer, self.params, loss, clip_norm=cfg.grad_clip_norm, ema=self.ema
            )
            self.step += 1
            value = float(loss.detach())
            self.loss = value if math.isnan(self.loss) else 0.98 * self.loss + 0.02 * value
        self.cpu_s += time.process_time() - cpu0
        self.wall_s += time.perf_counter() - wall0

    def sample(self, sampler: str, steps: int, n_per_class: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """n_per_class images of every class with the EMA weights; image k of each class has seed k (uint8)."""
        out, labels = [], []
        self.unet.eval()
        with ema_weights(self.ema, self.unet.parameters()):
            for label in range(num_classes):
                for start in range(0, n_per_class, 32):
                    seeds = range(start, min(n_per_class, start + 32))
                    images = denoise(
                        self.model,
                        make_scheduler(sampler, self.scheduler),
                        condition=self.model.class_condition(torch.full((len(seeds),), label)),
                        generators=[torch.Generator().manual_seed(s) for s in seeds],
                        steps=steps,
                        stochastic=SAMPLERS[sampler].stochastic,
                    )
                    out.append(from_model_range(images).numpy())
                    labels += [label] * len(seeds)
        self.unet.train()
        return np.concatenate(out), np.array(labels)


def train_equal_cpu(arms: dict[str, Arm], images, labels, *, budget_s: float, chunk_steps: int, log) -> None:
    """Alternate chunks, always training the arm with fewer CPU seconds, until both have spent `budget_s`."""
    while True:
        name, arm = min(arms.items(), key=lambda item: item[1].cpu_s)
        if arm.cpu_s >= budget_s:
            return
        per_step = arm.cpu_s / arm.step if arm.step else None
        steps = chunk_steps if per_step is None else max(1, min(chunk_steps, round((budget_s - arm.cpu_s) / per_step)))
        arm.train(images, labels, steps)
        log(f"{name}: step {arm.step}, {arm.cpu_s:.0f} cpu-s, {arm.wall_s:.0f} wall-s, loss {arm.loss:.4f}")


class Scorer:
    """The fidelity panels of image sets against one dataset's real train (reference) and val (floor)."""

    def __init__(self, data: Path, cache: Path, seed: int):
        self.train = load_image_arrays(data, split="train")
        self.val = load_image_arrays(data, split="val", classes=self.train.classes)
        size = int(self.train.pixels.shape[-1])
        settings = EncoderSettings(input_size_px=min(size, 64), seed=seed)
        self.extractor = load_or_train_domain_extractor(self.train, self.val, settings=settings, cache_dir=cache)
        self.real = {
            key: {**panel_features(arrays.pixels), "semantic": self.extractor(arrays.pixels)}
            for key, arrays in (("train", self.train), ("heldout", self.val))
        }
        self.config = PanelDistanceConfig(seed=seed)

    def panels(self, pixels: np.ndarray) -> dict:
        """panel -> {train, heldout, synthetic} features (what evaluate/panel_distance.fidelity_panels builds)."""
        synthetic = {**panel_features(pixels), "semantic": self.extractor(pixels)}
        return {
            p: {"train": self.real["train"][p], "heldout": self.real["heldout"][p], "synthetic": synthetic[p]}
            for p in PANELS
        }

    def score(self, pixels: np.ndarray, labels: np.ndarray) -> dict:
        """Per panel: overall ratio to floor, permutation p, per-class ratios with bootstrap intervals."""
        result = compute_panel_distances(
            panels=self.panels(pixels),
            train_labels=self.train.labels,
            heldout_labels=self.val.labels,
            synthetic_labels=labels,
            classes=self.train.classes,
            config=self.config,
        )
        return {
            name: {
                "ratio": block["overall"].get("ratio_to_floor", {}).get("value"),
                "p": block["overall"].get("permutation_p"),
                "per_class": {
                    c: {
                        "ratio": b.get("ratio_to_floor", {}).get("value"),
                        "ci95": b.get("ratio_to_floor", {}).get("ci95"),
                    }
                    for c, b in block["per_class"].items()
                },
            }
            for name, block in result["panels"].items()
        }

    def paired_ratio(self, sets: dict[str, np.ndarray], labels: np.ndarray, base: str, boots: int, seed: int) -> dict:
        """MMD^2(set) / MMD^2(base) per panel (summed over classes), with a paired bootstrap 95% interval.

        All sets hold the same (class, seed) images in the same order, so one resample of rows applies to all.
        """
        rng = np.random.default_rng(seed)
        features = {name: self.panels(pixels) for name, pixels in sets.items()}
        picks = [rng.integers(0, n, (boots, n)) for n in np.bincount(labels, minlength=len(self.train.classes))]
        out: dict = {}
        for panel in PANELS:
            scaler = Standardiser(features[base][panel]["train"], seed)
            totals = {name: np.zeros(boots + 1) for name in sets}
            for c in range(len(self.train.classes)):
                rows = np.flatnonzero(labels == c)
                pool = scaler(features[base][panel]["train"][self.train.labels == c])
                pool = pool[rng.choice(len(pool), min(len(pool), 2000), replace=False)]
                reference = _Reference(pool, rng)
                for name in sets:
                    syn = scaler(features[name][panel]["synthetic"][rows])
                    k_ss = _kernel(syn, syn, reference.bandwidth).numpy()
                    to_ref = _kernel(pool, syn, reference.bandwidth).numpy().mean(axis=0)
                    idx = np.vstack([np.arange(len(rows)), picks[c]])
                    within = np.array([k_ss[np.ix_(i, i)].mean() for i in idx])
                    totals[name] += reference.k_rr_mean + within - 2 * to_ref[idx].mean(axis=1)
            out[panel] = {
                name: {
                    "ratio": float(totals[name][0] / totals[base][0]),
                    "ci95": [float(v) for v in np.percentile(totals[name][1:] / totals[base][1:], [2.5, 97.5])],
                }
                for name in sets
                if name != base
            }
        return out


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    out = OUT / args.tag
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "log.txt", "a")

    def log(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    overrides = json.loads(args.model_overrides) if args.model_overrides else {}
    arms = {}
    for name, (prediction, gamma, _) in ARMS.items():
        config = train_config_for_dataset(
            args.data,
            preset=args.preset,
            model_overrides={**overrides, "prediction_type": prediction},
            max_duration_min=args.cpu_min,
            batch_size=args.batch_size,
            snr_gamma=gamma,
            mixed_precision="no",
            seed=args.seed,
        )
        arms[name] = Arm(config)
    images = load_image_arrays(args.data, split="train")
    pixels = torch.from_numpy(images.pixels)
    log(f"{args.tag}: {len(images)} train images, model {arms['flow_matching'].config.model.block_out_channels}")
    train_equal_cpu(arms, pixels, images.labels, budget_s=60 * args.cpu_min, chunk_steps=args.chunk_steps, log=log)

    scorer = Scorer(args.data, args.cache, args.seed)
    n_classes = len(images.classes)
    samples, sample_s = {}, {}
    for name, (_, _, sampler) in ARMS.items():
        start = time.process_time()
        samples[name] = arms[name].sample(sampler, 20, args.n_per_class, n_classes)
        sample_s[name] = time.process_time() - start
        log(f"sampled {name} with {sampler} 20 steps in {sample_s[name]:.0f} cpu-s")
    scores = {name: scorer.score(*samples[name]) for name in ARMS}
    for name in ARMS:
        log(f"{name}: " + ", ".join(f"{p} {scores[name][p]['ratio']:.2f}" for p in PANELS))
    better = min(ARMS, key=lambda name: sum(scores[name][p]["ratio"] for p in PANELS))
    sampler = ARMS[better][2]
    sweep = {20: samples[better][0]}
    for steps in args.steps:
        if steps not in sweep:
            sweep[steps] = arms[better].sample(sampler, steps, args.n_per_class, n_classes)[0]
            log(f"sampled {better} with {sampler} {steps} steps")
    labels = samples[better][1]
    sweep_scores = {steps: scorer.score(pixels_k, labels) for steps, pixels_k in sweep.items()}
    base = str(max(sweep))
    paired = scorer.paired_ratio({str(k): v for k, v in sweep.items()}, labels, base, args.bootstrap, args.seed)
    result = {
        "tag": args.tag,
        "data": str(args.data),
        "image_size_px": int(images.pixels.shape[-1]),
        "classes": images.classes,
        "n_train": len(images),
        "n_val_per_class": np.bincount(scorer.val.labels).tolist(),
        "n_per_class": args.n_per_class,
        "seed": args.seed,
        "cpu_min_per_arm": args.cpu_min,
        "model": arms["flow_matching"].config.model.model_dump(exclude={"prediction_type", "class_names"}),
        "batch_size": args.batch_size,
        "arms": {
            name: {
                "steps": arm.step,
                "cpu_s": round(arm.cpu_s, 1),
                "wall_s": round(arm.wall_s, 1),
                "final_loss_ema": arm.loss,
                "sampler": ARMS[name][2],
                "sample_cpu_s_20_steps": round(sample_s[name], 1),
                "scores_20_steps": scores[name],
            }
            for name, arm in arms.items()
        },
        "better": better,
        "sweep_sampler": sampler,
        "sweep_scores": {str(k): v for k, v in sorted(sweep_scores.items())},
        "paired_vs_base": {"base_steps": int(base), "bootstrap": args.bootstrap, "panels": paired},
    }
    (out / "result.json").write_text(json.dumps(result, indent=1, default=float))
    log(f"wrote {out / 'result.json'}")


def report(args: argparse.Namespace) -> None:
    results = [json.loads((OUT / tag / "result.json").read_text()) for tag in args.tags]
    objective_rows, sweep_rows, notes = [], [], []
    for r in results:
        for name, arm in r["arms"].items():
            s = arm["scores_20_steps"]
            objective_rows.append(
                [r["tag"], name, arm["steps"], arm["cpu_s"], arm["wall_s"], f"{arm['sampler']} 20"]
                + [_ratio_cell(s[p]) for p in PANELS]
            )
        paired = r["paired_vs_base"]
        for steps, s in r["sweep_scores"].items():
            cells = []
            for p in PANELS:
                pair = paired["panels"][p].get(steps)
                cells.append(
                    "1 (base)" if pair is None else f"{pair['ratio']:.2f} ({pair['ci95'][0]:.2f}-{pair['ci95'][1]:.2f})"
                )
            pairs = [paired["panels"][p].get(steps) for p in PANELS]
            widths = [(pair["ci95"][1] - pair["ci95"][0]) / 2 for pair in pairs if pair is not None]
            # The interval narrows as 1/sqrt(n): the n per class whose widest half-width would be 0.10.
            needed = math.ceil(r["n_per_class"] * (max(widths) / 0.10) ** 2) if widths else ""
            sweep_rows.append(
                [r["tag"], r["better"], f"{r['sweep_sampler']} {steps}"]
                + [_ratio_cell(s[p]) for p in PANELS]
                + cells
                + [needed]
            )
        notes.append(
            f"- `{r['tag']}`: {r['image_size_px']} px, classes {', '.join(r['classes'])}, {r['n_train']} train images, "
            f"val (floor) {r['n_val_per_class']} per class; {r['n_per_class']} samples per class "
            f"(seeds 0..{r['n_per_class'] - 1}); "
            f"UNet {r['model']['block_out_channels']} x{r['model']['layers_per_block']}, batch {r['batch_size']}, "
            f"{r['cpu_min_per_arm']:g} CPU-min per arm, training seed {r['seed']}; better objective: **{r['better']}**."
        )
    text = "\n\n".join([args.summary, "\n".join(notes)]) if args.summary else "\n".join(notes)
    write_result(
        "objective_compare",
        title="Flow matching vs v-prediction at equal training time",
        command=args.command,
        sections=[
            {
                "heading": "Fidelity at equal CPU time (20 sampler steps), ratio to the real-vs-real floor",
                "text": text,
                "table": table(
                    [
                        "data",
                        "objective",
                        "train steps",
                        "cpu s",
                        "wall s",
                        "sampler",
                        "intensity",
                        "texture",
                        "semantic",
                    ],
                    objective_rows,
                ),
            },
            {
                "heading": "Few-step quality of the better objective",
                "text": "Ratio to floor per panel, and MMD^2(k steps) / MMD^2(most steps, 50 where run) with a "
                "paired bootstrap 95% interval.",
                "table": table(
                    ["data", "objective", "sampler steps", "intensity", "texture", "semantic"]
                    + [f"{p}: k steps / most steps" for p in PANELS]
                    + ["n/class for +-0.10"],
                    sweep_rows,
                ),
            },
        ],
    )


def _ratio_cell(score: dict) -> str:
    return "n/a" if score["ratio"] is None else f"{score['ratio']:.2f} (p {score['p']:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command_name", required=True)
    r = commands.add_parser("run", help="train both arms on one dataset and score them")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--tag", required=True)
    r.add_argument("--preset", default="32")
    r.add_argument("--model-overrides", default="", help="JSON of DiffusionModelConfig fields")
    r.add_argument("--cpu-min", type=float, default=8.0, help="CPU minutes of training per arm")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--chunk-steps", type=int, default=10)
    r.add_argument("--n-per-class", type=int, default=128)
    r.add_argument("--steps", type=int, nargs="+", default=[4, 8, 20, 50])
    r.add_argument("--bootstrap", type=int, default=200)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--cache", type=Path, default=Path("bench/out/cache"))
    r.set_defaults(func=run)
    p = commands.add_parser("report", help="combine run results into bench/results/objective_compare.json")
    p.add_argument("tags", nargs="+")
    p.add_argument("--command", required=True, help="the run commands, as a reader would type them")
    p.add_argument("--summary", default="", help="findings (markdown) written above the first table")
    p.set_defaults(func=report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()

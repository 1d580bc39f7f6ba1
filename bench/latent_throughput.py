"""Latent vs pixel diffusion at the same resolution: training and sampling throughput and peak memory.

Usage:
    .venv/bin/python bench/latent_throughput.py [--size-px 256] [--batch-size 4] [--train-steps 3]
        [--sample-steps 3] [--device auto|cpu|cuda] [--threads N] [--json OUT.json]

Each case runs in its own process (so peak memory is its own): the pixel model is the
`synthmed train` UNet (preset for the size); the latent model is the f8 autoencoder + the
latent UNet preset for its 32x32 latents. Training throughput is UNet steps on pre-encoded
latents (as `synthmed latent train` does) plus, separately, the one-off encoding cost; sampling
includes decoding. Figures are ratios latent / pixel measured in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time

from result_file import command_line, earlier_sections, table, write_result


def _device(name: str):
    import torch

    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def _peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _pixel_case(args: dict) -> dict:
    import torch
    import torch.nn.functional as F

    from synthmed.models.config import preset_config, preset_for_size
    from synthmed.models.unet import build_scheduler, build_unet

    torch.set_num_threads(args["threads"])
    device = _device(args["device"])
    size, batch = args["size_px"], args["batch_size"]
    config = preset_config(preset_for_size(size), image_size_px=size, in_channels=1, num_classes=2)
    unet, scheduler = build_unet(config).to(device), build_scheduler(config)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, size, size, device=device)
    labels = torch.zeros(batch, dtype=torch.long, device=device)

    def train_step():
        t = torch.randint(0, 1000, (batch,), device=device)
        noise = torch.randn_like(x)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args["bf16"]):
            out = unet(scheduler.add_noise(x, noise, t), t, class_labels=labels).sample
        loss = F.mse_loss(out.float(), noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sample_step():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args["bf16"]):
            unet(x, torch.full((batch,), 500, device=device), class_labels=labels)

    return _measure(
        args,
        device,
        train_step,
        sample_step,
        decode=None,
        params_m=sum(p.numel() for p in unet.parameters()) / 1e6,
        name="pixel UNet",
    )


def _latent_case(args: dict) -> dict:
    import torch
    import torch.nn.functional as F

    from synthmed.latent.autoencoder import AE_PRESETS, AutoencoderConfig, build_autoencoder
    from synthmed.latent.conditioning import MetadataSpec
    from synthmed.latent.model import UNET_PRESETS, LatentDenoiser, LatentModelConfig, build_scheduler

    torch.set_num_threads(args["threads"])
    device = _device(args["device"])
    size, batch = args["size_px"], args["batch_size"]
    ae_config = AutoencoderConfig(image_size_px=size, channels=1, **AE_PRESETS["f8"])
    vae = build_autoencoder(ae_config).to(device).eval()
    preset = "32" if ae_config.latent_size <= 32 else "64"
    config = LatentModelConfig(
        latent_channels=4,
        latent_size=ae_config.latent_size,
        num_classes=2,
        metadata=MetadataSpec(age=True, sex_values=["F", "M"], view_values=["AP", "PA"]),
        **UNET_PRESETS[preset],
    )
    model, scheduler = LatentDenoiser(config).to(device), build_scheduler(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    z = torch.randn(batch, 4, ae_config.latent_size, ae_config.latent_size, device=device)
    labels = torch.zeros(batch, dtype=torch.long, device=device)
    meta = {
        "age": torch.zeros(batch, 2, device=device),
        "sex": torch.ones(batch, dtype=torch.long, device=device),
        "view": torch.ones(batch, dtype=torch.long, device=device),
    }
    images = torch.randn(batch, 1, size, size, device=device)

    def train_step():
        t = torch.randint(0, 1000, (batch,), device=device)
        noise = torch.randn_like(z)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args["bf16"]):
            out = model(scheduler.add_noise(z, noise, t), t, labels, meta)
        loss = F.mse_loss(out.float(), noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sample_step():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args["bf16"]):
            model(z, torch.full((batch,), 500, device=device), labels, meta)

    def decode():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args["bf16"]):
            vae.decode(z)

    def encode():
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args["bf16"]):
            vae.encode(images)

    result = _measure(
        args,
        device,
        train_step,
        sample_step,
        decode=decode,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        name=f"latent UNet ({preset}) + f8 AE",
    )
    result["encode_img_per_s"] = batch / _timed(encode, device, repeats=2)
    result["autoencoder_params_m"] = sum(p.numel() for p in vae.parameters()) / 1e6
    return result


def _timed(fn, device, *, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def _measure(args, device, train_step, sample_step, *, decode, params_m: float, name: str) -> dict:
    batch = args["batch_size"]
    train_s = _timed(train_step, device, repeats=args["train_steps"])
    step_s = _timed(sample_step, device, repeats=args["sample_steps"])
    decode_s = _timed(decode, device, repeats=1) if decode is not None else 0.0
    # One image with S denoising steps costs S UNet evaluations (x2 with guidance) plus one decode.
    per_image_50_s = (50 * step_s + decode_s) / batch
    return {
        "case": name,
        "device": str(device),
        "params_m": params_m,
        "train_img_per_s": batch / train_s,
        "sample_unet_evals_img_per_s": batch / step_s,
        "decode_img_per_s": batch / decode_s if decode_s else None,
        "sample_50_steps_s_per_img": per_image_50_s,
        "peak_mib": _peak_mib(device),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-px", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--sample-steps", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for both models")
    args = vars(parser.parse_args(argv))
    context = mp.get_context("spawn")
    results = []
    for case in (_pixel_case, _latent_case):
        with context.Pool(1) as pool:
            results.append(pool.apply(case, (args,)))
    pixel, latent = results
    print(
        f"{args['size_px']} px, batch {args['batch_size']}, {platform.processor() or platform.machine()}, "
        f"device {pixel['device']}, bf16={args['bf16']}"
    )
    for r in results:
        print(r, flush=True)
    ratios = {
        "train_speedup": latent["train_img_per_s"] / pixel["train_img_per_s"],
        "sample_speedup": pixel["sample_50_steps_s_per_img"] / latent["sample_50_steps_s_per_img"],
        "peak_memory_ratio": latent["peak_mib"] / pixel["peak_mib"],
    }
    columns = ["model", "params M", "train img/s", "UNet evals img/s", "s per image at 50 steps", "peak MiB"]
    rows = [
        [
            r["case"],
            round(r["params_m"], 1),
            round(r["train_img_per_s"], 4),
            round(r["sample_unet_evals_img_per_s"], 3),
            round(r["sample_50_steps_s_per_img"], 1),
            round(r["peak_mib"]),
        ]
        for r in results
    ]
    text = (
        f"{args['size_px']} px, batch {args['batch_size']}, device {pixel['device']}, bf16={args['bf16']}, "
        f"{args['threads']} thread(s). Latent / pixel: training {ratios['train_speedup']:.1f}x faster, sampling "
        f"{ratios['sample_speedup']:.1f}x faster, peak memory x{ratios['peak_memory_ratio']:.2f}; one-off "
        f"encoding of the training set {latent['encode_img_per_s']:.2f} img/s."
    )
    sections = [{"heading": f"device {pixel['device']}", "text": text, "table": table(columns, rows)}]
    write_result(
        "latent_throughput",
        title="Latent vs pixel diffusion at 256 px",
        command=command_line(),
        sections=sections + earlier_sections("latent_throughput"),
    )


if __name__ == "__main__":
    main()

"""Benchmark: NVIB layer + denoising attention against plain SDPA cross-attention.

All variants use the same q/k/v/out ``nn.Linear`` projections. Plain cross-attention attends
to the N encoder tokens; NVIB attends to the N+1 latent slots (prior first). Cases:

- ``*+layer``: the NVIB layer (μ, log σ², log α projections, sampling/pruning, both KLs) is
  included in every call — the worst case, as if the model had a single decoder layer.
- ``*/6dec``: the layer cost amortised over 6 decoder layers (BART-base): the layer runs once
  per forward, each decoder layer pays for its own cross-attention only. Derived from the
  measured times as ``(t(+layer) + 5·t(-attn)) / (6·t(plain))``.
- ``*-attn``: cross-attention only, the latent given (as a leaf that requires grad, so the
  backward does the same work as plain attention's backward into the encoder states).

Timings are medians over repeats; the variants are run round-robin within each repeat so that
background load hits all of them alike. Run: ``python bench/bench_nvib.py [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hf_nvib.nvib import (
    NvibLayer,
    denoising_attention_eval,
    denoising_attention_train,
    evaluation_terms,
    training_key_bias,
)

DECODER_LAYERS = 6


class Projections(nn.Module):
    """The cross-attention's four projections, shared by every variant."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))

    def split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, -1).transpose(1, 2)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1))


def build_cases(
    batch: int, source: int, target: int, width: int, heads: int, device: str
) -> dict[str, tuple[Callable[[], torch.Tensor], bool]]:
    """name → (callable returning the output, whether to time backward too)."""
    torch.manual_seed(0)
    scale = 1 / math.sqrt(width // heads)
    proj = Projections(width, heads).to(device)
    layer = NvibLayer(width, logit_scale=scale, stdev_tau=0.1).to(device)
    # No variance anywhere (prior included): evaluation_terms drops the σ² value term.
    flat = NvibLayer(width, logit_scale=scale, prior_var=1e-30).to(device)
    x = torch.randn(batch, source, width, device=device, requires_grad=True)
    y = torch.randn(batch, target, width, device=device)
    mask = torch.ones(batch, source, dtype=torch.long, device=device)
    mask[batch // 2 :, source * 3 // 4 :] = 0
    key_mask = mask.bool()[:, None, None, :]

    def plain() -> torch.Tensor:
        out = F.scaled_dot_product_attention(
            proj.split(proj.q(y)),
            proj.split(proj.k(x)),
            proj.split(proj.v(x)),
            attn_mask=key_mask,
            scale=scale,
        )
        return proj.merge(out)

    def train_attn(z: torch.Tensor, log_pi: torch.Tensor) -> torch.Tensor:
        out, _ = denoising_attention_train(
            proj.split(proj.q(y)),
            proj.split(proj.k(z)),
            proj.split(proj.v(z)),
            training_key_bias(z, log_pi, scale),
            scale=scale,
        )
        return proj.merge(out)

    def eval_attn(nv) -> torch.Tensor:
        terms = evaluation_terms(nv.mu, nv.logvar, nv.log_pi, scale)
        out, _ = denoising_attention_eval(
            proj.split(proj.q(y)),
            proj.split(proj.k(terms.key_input)),
            proj.split(proj.v(terms.value_input)),
            terms.key_bias,
            variance_ratio=terms.variance_ratio,
            key_weight=proj.k.weight,
            value_weight=proj.v.weight,
        )
        return proj.merge(out)

    with torch.no_grad():
        fixed_train, fixed_eval, fixed_flat = (
            layer(x, mask, sample=True),
            layer(x, mask, sample=False),
            flat(x, mask, sample=False),
        )
    assert evaluation_terms(fixed_flat.mu, fixed_flat.logvar, fixed_flat.log_pi, scale)
    z = fixed_train.z.clone().requires_grad_(True)
    log_pi = fixed_train.log_pi.clone().requires_grad_(True)

    def train_with_layer() -> torch.Tensor:
        nv = layer(x, mask, sample=True)
        return train_attn(nv.z, nv.log_pi) + 0 * (nv.kl_gaussian.sum() + nv.kl_dirichlet.sum())

    return {
        "plain": (plain, True),
        "train-attn": (lambda: train_attn(z, log_pi), True),
        "train+layer": (train_with_layer, True),
        "eval-attn": (lambda: eval_attn(fixed_flat), False),
        "eval+layer": (lambda: eval_attn(flat(x, mask, sample=False)), False),
        "eval-attn+var": (lambda: eval_attn(fixed_eval), False),
        "eval+layer+var": (lambda: eval_attn(layer(x, mask, sample=False)), False),
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_cases(cases, device: str, repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per call; keys ``name fwd`` (no_grad) and ``name fwd+bwd``."""
    runners: dict[str, Callable[[], None]] = {}
    for name, (fn, backward) in cases.items():

        def fwd(fn=fn) -> None:
            with torch.no_grad():
                fn()

        runners[f"{name} fwd"] = fwd
        if backward:

            def fwd_bwd(fn=fn) -> None:
                fn().square().mean().backward()

            runners[f"{name} fwd+bwd"] = fwd_bwd
    samples: dict[str, list[float]] = {k: [] for k in runners}
    names = list(runners)
    for rep in range(warmup + repeats):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for key in order:
            _sync(device)
            start = time.perf_counter()
            runners[key]()
            _sync(device)
            if rep >= warmup:
                samples[key].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in samples.items()}


def report(label: str, times: dict[str, float]) -> None:
    rows = [
        ("train-attn", "fwd"),
        ("train-attn", "fwd+bwd"),
        ("train+layer", "fwd"),
        ("train+layer", "fwd+bwd"),
        ("train/6dec", "fwd"),
        ("train/6dec", "fwd+bwd"),
        ("eval-attn", "fwd"),
        ("eval+layer", "fwd"),
        ("eval/6dec", "fwd"),
        ("eval-attn+var", "fwd"),
        ("eval+layer+var", "fwd"),
        ("eval/6dec+var", "fwd"),
    ]
    print(f"\n## {label}")
    print(f"| {'variant':<16} | {'pass':<7} | {'nvib ms':>9} | {'plain ms':>9} | {'ratio':>6} |")
    print(f"|{'-' * 18}|{'-' * 9}|{'-' * 11}|{'-' * 11}|{'-' * 8}|")
    for name, kind in rows:
        ref = times[f"plain {kind}"]
        if "/6dec" in name:
            head, _, tail = name.partition("/6dec")
            with_layer = times[f"{head}+layer{tail} {kind}"]
            attn = times[f"{head}-attn{tail} {kind}"]
            mine = (with_layer + (DECODER_LAYERS - 1) * attn) / DECODER_LAYERS
        else:
            mine = times[f"{name} {kind}"]
        print(
            f"| {name:<16} | {kind:<7} | {mine * 1e3:9.3f} | {ref * 1e3:9.3f} | {mine / ref:6.2f} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats, warmup = (3, 1) if args.quick else (25, 2)
    print(
        f"bench_nvib: torch {torch.__version__}, device {args.device}, "
        f"threads {torch.get_num_threads()}, repeats {repeats} (medians)"
    )
    sizes = [(8, 128, 64, 768, 12), (4, 32, 16, 64, 4)]
    for batch, source, target, width, heads in sizes:
        cases = build_cases(batch, source, target, width, heads, args.device)
        times = time_cases(cases, args.device, repeats, warmup)
        report(f"B={batch} Ns={source} Nt={target} P={width} H={heads}", times)


if __name__ == "__main__":
    main()

"""Benchmark NVIB-BART/T5 against the plain model with the same config and weights.

Measures, in one run: train step time (forward + backward with labels), greedy and beam-4
``generate`` time for exactly 32 new tokens, peak RSS growth during each operation, and the
generate time of the NVIB model with pruning + compaction at several kept fractions (set by
shifting the log α bias). Prints ratios NVIB / plain. Random weights, CPU.

    python bench/bench_models.py --quick     # small size only, fewer repetitions
    python bench/bench_models.py             # also bart-base and t5-small sizes
"""

from __future__ import annotations

import argparse
import ctypes
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.utils import logging as hf_logging

import hf_nvib


@dataclass
class Size:
    name: str
    kind: str  # "bart" | "t5"
    config: dict
    batch: int
    src_len: int
    tgt_len: int


SIZES = {
    "bart-small": Size(
        "bart-small",
        "bart",
        dict(
            d_model=256,
            encoder_layers=3,
            decoder_layers=3,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=1024,
            decoder_ffn_dim=1024,
            vocab_size=8000,
        ),
        8,
        64,
        32,
    ),
    "t5-tiny": Size(
        "t5-tiny",
        "t5",
        dict(d_model=256, d_kv=64, num_heads=4, d_ff=1024, num_layers=3, vocab_size=8000),
        8,
        64,
        32,
    ),
    "bart-base": Size(
        "bart-base",
        "bart",
        dict(
            d_model=768,
            encoder_layers=6,
            decoder_layers=6,
            encoder_attention_heads=12,
            decoder_attention_heads=12,
            encoder_ffn_dim=3072,
            decoder_ffn_dim=3072,
            vocab_size=50265,
        ),
        8,
        128,
        32,
    ),
    "t5-small": Size(
        "t5-small",
        "t5",
        dict(d_model=512, d_kv=64, num_heads=8, d_ff=2048, num_layers=6, vocab_size=32128),
        8,
        128,
        32,
    ),
}


class PeakRss:
    """Peak resident-set growth (MiB) while the block runs, sampled every 2 ms (CPU has no
    allocator statistics; tracemalloc does not see torch's allocations)."""

    def __enter__(self) -> PeakRss:
        _LIBC.malloc_trim(0)  # hand freed memory back so that the growth is this block's
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.001)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


_LIBC = ctypes.CDLL("libc.so.6")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _build(size: Size, seed: int = 0):
    if size.kind == "bart":
        config = BartConfig(
            max_position_embeddings=1024, forced_eos_token_id=None, dropout=0.0, **size.config
        )
        plain_cls, nvib_cls, conf_cls = (
            BartForConditionalGeneration,
            hf_nvib.NvibBartForConditionalGeneration,
            hf_nvib.NvibBartConfig,
        )
    else:
        config = T5Config(decoder_start_token_id=0, dropout_rate=0.0, **size.config)
        plain_cls, nvib_cls, conf_cls = (
            T5ForConditionalGeneration,
            hf_nvib.NvibT5ForConditionalGeneration,
            hf_nvib.NvibT5Config,
        )
    torch.manual_seed(seed)
    plain = plain_cls(config)
    nvib = nvib_cls(conf_cls.from_plain(config))
    missing, unexpected = nvib.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all("nvib" in k for k in missing)
    return plain, nvib


def _inputs(size: Size, vocab: int, src_len: int | None = None) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    src_len = src_len or size.src_len
    ids = torch.randint(5, vocab, (size.batch, src_len), generator=gen)
    mask = torch.ones_like(ids)
    mask[size.batch // 2 :, src_len * 3 // 4 :] = 0  # some padding
    labels = torch.randint(5, vocab, (size.batch, size.tgt_len), generator=gen)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _time(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """(min seconds over reps, peak RSS MiB of one run) after one warm-up run."""
    fn()
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    with PeakRss() as rss:
        fn()
    return best, rss.mib


def _train_step(model, batch) -> Callable[[], None]:
    def step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()

    return step


def _generate(model, batch, beams: int) -> Callable[[], None]:
    src = {k: batch[k] for k in ("input_ids", "attention_mask")}

    def run() -> None:
        model.eval()
        with torch.no_grad():
            model.generate(
                **src, num_beams=beams, max_new_tokens=32, min_new_tokens=32, do_sample=False
            )

    return run


def _set_kept_fraction(model, batch, fraction: float) -> float:
    """Shift the log α bias so that ~``fraction`` of the real tokens survive pruning; return
    the measured kept proportion (prior included). At the identity init every token of a
    LayerNorm-ed encoder has the same ‖x‖², hence the same α: a small random linear term
    stands in for a trained α projection so that tokens differ."""
    layer = model.get_encoder().nvib
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        layer.alpha_proj.weight_linear.copy_(0.5 * torch.randn(layer.d_model, generator=gen))
        layer.alpha_proj.bias.fill_(model.config.nvib_alpha_tau)
        if fraction < 1.0:
            model.eval()
            enc = model.get_encoder()(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            )
            real = enc.attention_mask[:, 1:].bool()
            quantile = torch.quantile(enc.log_alpha[:, 1:][real].double(), 1.0 - fraction).item()
            layer.alpha_proj.bias.sub_(quantile - math.log(layer.prune_threshold) - 1e-4)
        enc = model.get_encoder()(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
    return (enc.num_kept.float() / enc.num_valid.float()).mean().item()


def bench_size(size: Size, reps: int, prune_src_len: int) -> None:
    plain, nvib = _build(size)
    batch = _inputs(size, size.config["vocab_size"])
    print(
        f"\n## {size.name}: batch {size.batch}, source {size.src_len}, target {size.tgt_len}, "
        f"32 new tokens, {reps} reps (min)"
    )
    print(
        f"{'operation':<18}{'plain s':>10}{'nvib s':>10}{'ratio':>8}"
        f"{'plain MiB':>11}{'nvib MiB':>10}"
    )
    for name, make in (
        ("train step", lambda m: _train_step(m, batch)),
        ("greedy generate", lambda m: _generate(m, batch, 1)),
        ("beam-4 generate", lambda m: _generate(m, batch, 4)),
    ):
        # interleave plain / nvib to share the machine's noise
        t_plain, m_plain = _time(make(plain), reps)
        t_nvib, m_nvib = _time(make(nvib), reps)
        t_plain = min(t_plain, _time(make(plain), reps)[0])
        t_nvib = min(t_nvib, _time(make(nvib), reps)[0])
        print(
            f"{name:<18}{t_plain:>10.3f}{t_nvib:>10.3f}{t_nvib / t_plain:>8.3f}"
            f"{m_plain:>11.1f}{m_nvib:>10.1f}"
        )

    long_batch = _inputs(size, size.config["vocab_size"], prune_src_len)
    nvib.config.nvib_compact = True
    t_ref, _ = _time(_generate(plain, long_batch, 4), reps)
    print(f"pruning + compaction, beam-4 generate, source {prune_src_len} (plain {t_ref:.3f} s):")
    print(f"{'target kept':<14}{'kept (measured)':>16}{'nvib s':>10}{'vs plain':>10}")
    for fraction in (1.0, 0.5, 0.25):
        kept = _set_kept_fraction(nvib, long_batch, fraction)
        t, _ = _time(_generate(nvib, long_batch, 4), reps)
        print(f"{fraction:<14.2f}{kept:>16.3f}{t:>10.3f}{t / t_ref:>10.3f}")
    nvib.config.nvib_compact = False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repetitions")
    parser.add_argument("--sizes", nargs="*", default=None, help=f"subset of {list(SIZES)}")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.sizes or (["bart-small", "t5-tiny"] if args.quick else list(SIZES))
    reps = 2 if args.quick else 3
    prune_src_len = 256 if args.quick else 512
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in names:
        bench_size(SIZES[name], reps, prune_src_len)


if __name__ == "__main__":
    main()

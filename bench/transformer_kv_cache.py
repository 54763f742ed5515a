"""Benchmark: Transformer sampling with and without the key–value cache.

A small untrained causal Transformer (4 blocks, width 128, 4 heads, context 256, 64 tokens)
generates 16 sequences of 256 tokens, once with the cache (each step computes one new
position and attends over the cached keys and values) and once without (each step
recomputes the whole prefix). Times are the median of 3 runs after one warm-up; both paths
must draw identical sequences from the same seed. float32, no gradients, one process;
``--device cuda`` runs it on a GPU.

    .venv/bin/python bench/transformer_kv_cache.py [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from ptheta.models.sequence import TransformerNetwork

N_TOKENS, SEQ_LEN, N_SEQUENCES, REPEATS = 64, 256, 16, 3
ARCH = {"dim": 128, "n_heads": 4, "n_layers": 4, "context": 256}


def timed(
    net: TransformerNetwork, use_cache: bool, device: torch.device
) -> tuple[float, torch.Tensor]:
    """Median seconds of REPEATS generations, and the last sequences drawn."""
    times, out = [], None
    for _ in range(REPEATS):
        generator = torch.Generator(device=device).manual_seed(0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = net.sample(N_SEQUENCES, generator=generator, use_cache=use_cache)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    device = torch.device(parser.parse_args().device)
    torch.manual_seed(0)
    net = TransformerNetwork(N_TOKENS, SEQ_LEN, **ARCH).to(device).eval()
    net.sample(2, generator=torch.Generator(device=device).manual_seed(0))  # warm-up

    cached_s, cached = timed(net, True, device)
    uncached_s, uncached = timed(net, False, device)
    identical = torch.equal(cached, uncached)

    tokens = N_SEQUENCES * SEQ_LEN
    table = Table(
        title=f"Transformer sampling: {N_SEQUENCES} × {SEQ_LEN} tokens, {ARCH['n_layers']} "
        f"layers, width {ARCH['dim']}, context {ARCH['context']} ({device}, "
        f"{torch.get_num_threads()} threads)"
    )
    for col in ("decoding", "median time (s)", "tokens / s", "speed-up"):
        table.add_column(col, justify="right" if col != "decoding" else "left")
    table.add_row(
        "KV cache", f"{cached_s:.3f}", f"{tokens / cached_s:,.0f}", f"{uncached_s / cached_s:.1f}×"
    )
    table.add_row("recompute prefix", f"{uncached_s:.3f}", f"{tokens / uncached_s:,.0f}", "1.0×")
    console = Console()
    console.print(table)
    console.print(f"identical samples from the same seed: {identical}")
    if not identical:
        raise SystemExit("cached and uncached sampling disagree")


if __name__ == "__main__":
    main()

"""Multi-head causal self-attention with an optional key–value cache, and a pre-LN block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ptheta.errors import ParameterError


class KVCache:
    """The keys and values of the positions one attention layer has seen so far.

    Incremental decoding appends the new positions' keys and values and attends over all of
    them, so each step costs O(length) instead of recomputing the whole prefix. Storage is
    allocated for ``capacity`` positions and doubled when it runs out.

    Arguments:
        capacity: positions to allocate at the first append (e.g. the sequence length).

    Example:
        >>> attn = CausalSelfAttention(8, 2)
        >>> x = torch.randn(3, 5, 8)
        >>> cache = KVCache(5)
        >>> steps = torch.cat([attn(x[:, t : t + 1], cache) for t in range(5)], dim=1)
        >>> torch.allclose(steps, attn(x), atol=1e-6), len(cache)
        (True, 5)
    """

    def __init__(self, capacity: int = 0) -> None:
        self.capacity = capacity
        self.length = 0
        self.k: torch.Tensor | None = None  # (B, H, capacity, Dh)
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.length

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add keys and values (B, H, S, Dh); return all of them so far, (B, H, length, Dh)."""
        end = self.length + k.shape[2]
        if self.k is None or self.v is None or end > self.k.shape[2]:
            size = max(end, self.capacity, 2 * (0 if self.k is None else self.k.shape[2]))
            new_k = k.new_empty(*k.shape[:2], size, k.shape[3])
            new_v = v.new_empty(*v.shape[:2], size, v.shape[3])
            if self.k is not None and self.v is not None:
                new_k[:, :, : self.length] = self.k[:, :, : self.length]
                new_v[:, :, : self.length] = self.v[:, :, : self.length]
            self.k, self.v = new_k, new_v
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position i attends to positions ≤ i only.

    Arguments:
        dim: model width C (divisible by ``n_heads``).
        n_heads: attention heads H; each has width C / H.
        dropout: dropout on the attention weights and on the output (training only).

    ``forward(x, cache=None)``: ``x`` (B, S, C) are S new positions. Without a cache they are
    the whole sequence; with a :class:`KVCache` holding P earlier positions they are positions
    P … P + S − 1 and attend to the cached ones as well (the cache is updated in place).
    Returns (B, S, C).

    Example:
        >>> attn = CausalSelfAttention(16, 4)
        >>> attn(torch.randn(2, 7, 16)).shape
        torch.Size([2, 7, 16])

    References:
        Vaswani et al., "Attention is all you need", NeurIPS 2017.
    """

    def __init__(self, dim: int, n_heads: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % n_heads:
            raise ParameterError(f"dim={dim} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.out_drop = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"dim={self.proj.in_features}, n_heads={self.n_heads}, dropout={self.dropout}"

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        b, s, c = x.shape
        # (B, S, 3C) -> three (B, H, S, Dh)
        q, k, v = (
            t.view(b, s, self.n_heads, c // self.n_heads).transpose(1, 2)
            for t in self.qkv(x).split(c, dim=2)
        )
        past = 0
        if cache is not None:
            past = len(cache)
            k, v = cache.append(k, v)  # (B, H, P + S, Dh)
        mask = None
        if past and s > 1:  # new query i sits at P + i and sees keys 0 … P + i
            mask = torch.ones(s, past + s, dtype=torch.bool, device=x.device).tril(past)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=past == 0 and s > 1,  # one new query may see every cached key
        )  # (B, H, S, Dh)
        return self.out_drop(self.proj(y.transpose(1, 2).reshape(b, s, c)))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm decoder block: x + attn(LN(x)), then x + MLP(LN(x)) (GELU, width 4C).

    Arguments:
        dim: model width C.
        n_heads: attention heads.
        dropout: dropout in attention and after the MLP (training only).

    ``forward(x, cache=None)`` maps (B, S, C) to (B, S, C); see :class:`CausalSelfAttention`
    for the cache.

    Example:
        >>> TransformerBlock(16, 2)(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])

    References:
        Xiong et al., "On layer normalization in the Transformer architecture", ICML 2020.
    """

    def __init__(self, dim: int, n_heads: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout=dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def extra_repr(self) -> str:
        return f"dim={self.ln1.normalized_shape[0]}, n_heads={self.attn.n_heads}"

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))

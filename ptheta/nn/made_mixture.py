"""MADE MoG: an autoregressive density over R^D with a mixture of Gaussians per variable.

The base density of the MAF paper's "MAF MoG": a flow whose data have several modes per
conditional (dequantised binary pixels: one mode per level) cannot bend a unimodal
Gaussian base into them with affine layers alone; a mixture per conditional holds them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ptheta.nn.masked import made_layers, made_outputs
from ptheta.nn.mixture_head import DiagonalMixture


class MADEMixture(nn.Module):
    """p(z) = ∏_i Σ_k π_ik N(z_i; μ_ik, σ_ik²) over z ∈ R^D, exact, with (π, μ, σ)_i the
    outputs of a MADE that sees z_j only for the j before i in ``ordering``.

    The MADE gives each variable the K logits, K means and K pre-scales of a
    :class:`~ptheta.nn.mixture_head.DiagonalMixture` of one dimension (σ ≥ ``min_scale``).
    The log-density takes one pass; :meth:`sample` goes variable by variable (D passes).
    The output layer starts at zero weight, with the K means spread over [−1, 1] and unit
    scales: without a context every conditional starts as the same fixed mixture, and the
    components differ from the first step.

    Shapes: ``log_prob`` takes z (N, D) and a context (N, F) or None, and returns (N,).

    Arguments:
        n_features: D.
        hidden: sizes of the MADE's hidden layers.
        n_components: K ≥ 1 per variable.
        ordering: LongTensor (D,), the autoregressive order (default 0..D−1).
        context_features: size of an unmasked context (one-hot class) input; 0: none.
        min_scale: the smallest σ.

    Example:
        >>> import torch
        >>> base = MADEMixture(3, [16], n_components=2)
        >>> z = base.sample(5, generator=torch.Generator().manual_seed(0))
        >>> z.shape, base.log_prob(z).shape
        (torch.Size([5, 3]), torch.Size([5]))

    References:
        Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow for Density
        Estimation, NeurIPS (MADE MoG, MAF MoG). Germain et al. (2015), MADE, ICML.
    """

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        *,
        n_components: int = 10,
        ordering: Tensor | None = None,
        context_features: int = 0,
        min_scale: float = 1e-3,
    ) -> None:
        super().__init__()
        d = n_features
        ordering = torch.arange(d) if ordering is None else torch.as_tensor(ordering)
        self.register_buffer("ordering", ordering.long())
        self.mixture = DiagonalMixture(1, n_components=n_components, min_scale=min_scale)
        per = self.mixture.n_params  # K logits, K means, K pre-scales per variable
        # hidden degrees spread over all D: a layer narrower than D still lets the late
        # conditionals see the variables before them
        self.layers = made_layers(
            ordering, hidden, per, context_features=context_features, spread=True
        )
        k = self.mixture.n_components
        means = torch.linspace(-1.0, 1.0, k) if k > 1 else torch.zeros(1)
        pre_scale = torch.full((k,), 1.0 - min_scale).expm1().log()  # softplus⁻¹(1 − min)
        last = self.layers[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.cat([torch.zeros(k), means, pre_scale]).repeat(d))

    def extra_repr(self) -> str:
        hidden = [layer.out_features for layer in self.layers[:-1]]
        return (
            f"n_features={len(self.ordering)}, hidden={hidden}, "
            f"n_components={self.mixture.n_components}"
        )

    def params(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Raw mixture parameters (N, D, 3K) of every conditional; those of variable i
        depend on z before i in the ordering (and the context) only."""
        return made_outputs(self.layers, z, context)

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """Exact log p(z) in nats, z (N, D) → (N,)."""
        return self.mixture.log_prob(self.params(z, context), z.unsqueeze(-1)).sum(-1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        context: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """n draws (n, D), variable by variable along the ordering; all randomness from
        ``generator`` (on the module's device)."""
        ref = self.layers[-1].bias
        z = torch.zeros(n, len(self.ordering), dtype=ref.dtype, device=ref.device)
        for i in self.ordering.tolist():
            raw = self.params(z, context)[:, i]  # (n, 3K): needs z before i only
            z[:, i] = self.mixture.sample(raw, generator)[:, 0]
        return z

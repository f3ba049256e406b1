"""Multi-head attention whose four projections are child modules, so each can be a network.

``nn.MultiheadAttention`` keeps its query, key and value projections in one fused parameter
(``in_proj_weight``) and reads ``out_proj.weight`` directly inside
``F.multi_head_attention_forward``: neither can become a tensor-network layer in place. This
module computes the same function with ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` as
ordinary children called as modules, so [`compress`][tnlayers.compress] (or a user) can swap any
of them for a [`TNLinear`][tnlayers.TNLinear].
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention
from torch import nn

from .._core.errors import ArgumentTypeError, ShapeError

__all__ = ["UnfusedMultiheadAttention"]


def _float_mask(mask: torch.Tensor | None, dtype: torch.dtype, name: str) -> torch.Tensor | None:
    """A boolean mask (``True`` = may not attend) as an additive float mask, as PyTorch does."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(
            mask, float("-inf")
        )
    if not torch.is_floating_point(mask):
        raise ArgumentTypeError(f"{name} must be a bool or float tensor, got {mask.dtype}")
    return mask.to(dtype)


class UnfusedMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with its projections as child modules.

    Same constructor arguments, same ``forward`` signature and the same outputs as
    ``nn.MultiheadAttention`` (masks, ``is_causal``, ``need_weights``,
    ``average_attn_weights``, ``add_bias_kv``, ``add_zero_attn``, ``kdim``/``vdim``,
    ``batch_first``, unbatched inputs, dropout on the attention weights). The difference is
    where the weights live: ``q_proj`` ``(E, E)``, ``k_proj`` ``(E, kdim)``, ``v_proj``
    ``(E, vdim)`` and ``out_proj`` ``(E, E)`` are modules (``nn.Linear`` at first), each applied
    by calling it, so any of them can be replaced by a tensor-network layer.

    Parameters
    ----------
    embed_dim, num_heads, dropout, bias, add_bias_kv, add_zero_attn, kdim, vdim, batch_first,
    device, dtype
        As in ``nn.MultiheadAttention``.

    Shapes
    ------
    - query: ``(L, N, E)``, ``(N, L, E)`` if ``batch_first``, or ``(L, E)`` unbatched
    - key, value: ``(S, N, kdim)`` / ``(S, N, vdim)`` in the same layout
    - output: ``(L, N, E)`` (or as the query), and the weights ``(N, L, S)`` averaged over heads
      or ``(N, num_heads, L, S)`` when ``need_weights``

    Examples
    --------
    >>> attention = nn.MultiheadAttention(16, 4, batch_first=True)
    >>> unfused = UnfusedMultiheadAttention.from_attention(attention)
    >>> x = torch.randn(2, 5, 16)
    >>> torch.allclose(unfused(x, x, x)[0], attention(x, x, x)[0], atol=1e-6)
    True
    """

    # nn.TransformerEncoderLayer reads these to decide on its fused fast path, which needs the
    # fused weights; these values send it down the ordinary path that calls this module.
    _qkv_same_embed_dim = False
    in_proj_weight: torch.Tensor | None = None
    in_proj_bias: torch.Tensor | None = None

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ShapeError(
                f"embed_dim and num_heads must be positive, got {embed_dim} and {num_heads}"
            )
        if embed_dim % num_heads:
            raise ShapeError(
                f"embed_dim {embed_dim} must be divisible by num_heads {num_heads} (each head "
                "gets embed_dim / num_heads features)"
            )
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.add_zero_attn = add_zero_attn
        self.q_proj: nn.Module = nn.Linear(embed_dim, embed_dim, bias, **factory)
        self.k_proj: nn.Module = nn.Linear(self.kdim, embed_dim, bias, **factory)
        self.v_proj: nn.Module = nn.Linear(self.vdim, embed_dim, bias, **factory)
        self.out_proj: nn.Module = nn.Linear(embed_dim, embed_dim, bias, **factory)
        self.bias_k: nn.Parameter | None = None
        self.bias_v: nn.Parameter | None = None
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.zeros(1, 1, embed_dim, **factory))
            self.bias_v = nn.Parameter(torch.zeros(1, 1, embed_dim, **factory))
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)

    @classmethod
    def from_attention(cls, attention: nn.MultiheadAttention) -> UnfusedMultiheadAttention:
        """The same attention, its weights copied into separate projections.

        Keeps the training mode and every parameter's ``requires_grad``, device and dtype.
        """
        if not isinstance(attention, nn.MultiheadAttention):
            raise ArgumentTypeError(
                f"from_attention needs an nn.MultiheadAttention, got {type(attention).__name__}"
            )
        out = attention.out_proj
        new = cls(
            attention.embed_dim,
            attention.num_heads,
            attention.dropout,
            bias=out.bias is not None,
            add_bias_kv=attention.bias_k is not None,
            add_zero_attn=attention.add_zero_attn,
            kdim=attention.kdim,
            vdim=attention.vdim,
            batch_first=attention.batch_first,
            device=out.weight.device,
            dtype=out.weight.dtype,
        )
        e = attention.embed_dim
        if attention._qkv_same_embed_dim:
            fused = attention.in_proj_weight
            weights = (fused[:e], fused[e : 2 * e], fused[2 * e :])
            trainable: tuple[bool, ...] = (fused.requires_grad,) * 3
        else:
            weights = (
                attention.q_proj_weight,
                attention.k_proj_weight,
                attention.v_proj_weight,
            )
            trainable = tuple(w.requires_grad for w in weights)
        biases = (
            (None,) * 3
            if attention.in_proj_bias is None
            else (attention.in_proj_bias[:e], attention.in_proj_bias[e : 2 * e],
                  attention.in_proj_bias[2 * e :])
        )  # fmt: skip
        in_bias_trainable = attention.in_proj_bias is None or attention.in_proj_bias.requires_grad
        projections = [cast(nn.Linear, p) for p in (new.q_proj, new.k_proj, new.v_proj)]
        new_out = cast(nn.Linear, new.out_proj)
        with torch.no_grad():
            for projection, weight, bias, grad in zip(
                projections, weights, biases, trainable, strict=True
            ):
                projection.weight.copy_(weight)
                projection.weight.requires_grad_(grad)
                if bias is not None:
                    projection.bias.copy_(bias)
                    projection.bias.requires_grad_(in_bias_trainable)
            new_out.weight.copy_(out.weight)
            new_out.weight.requires_grad_(out.weight.requires_grad)
            if out.bias is not None:
                new_out.bias.copy_(out.bias)
                new_out.bias.requires_grad_(out.bias.requires_grad)
            for name in ("bias_k", "bias_v"):
                source = getattr(attention, name)
                if source is not None:
                    getattr(new, name).copy_(source)
                    getattr(new, name).requires_grad_(source.requires_grad)
        new.train(attention.training)
        return new

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"batch_first={self.batch_first}"
        )

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` to ``key``/``value``; see ``nn.MultiheadAttention.forward``."""
        batched = query.dim() == 3
        if query.dim() not in (2, 3) or key.dim() != query.dim() or value.dim() != query.dim():
            raise ShapeError(
                f"query, key and value must all be 3-D (batched) or all 2-D (unbatched), got "
                f"{query.dim()}-D, {key.dim()}-D and {value.dim()}-D"
            )
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        target, batch, features = query.shape
        if features != self.embed_dim:
            raise ShapeError(
                f"query has {features} features in its last dimension, expected embed_dim = "
                f"{self.embed_dim}"
            )
        dtype = query.dtype
        key_padding_mask = _float_mask(key_padding_mask, dtype, "key_padding_mask")
        if is_causal and attn_mask is None:
            raise ShapeError(
                "is_causal=True is a hint that attn_mask is the causal mask; pass attn_mask too "
                "(as nn.MultiheadAttention requires)"
            )
        if is_causal and key_padding_mask is None and not need_weights:
            attn_mask = None  # the kernel builds the causal mask itself
        else:
            attn_mask = _float_mask(attn_mask, dtype, "attn_mask")
            is_causal = False
            if attn_mask is not None and attn_mask.dim() == 2:
                attn_mask = attn_mask.unsqueeze(0)

        heads, head_dim = self.num_heads, self.head_dim
        q = self.q_proj(query)
        k = self.k_proj(key)
        v = self.v_proj(value)
        if self.bias_k is not None and self.bias_v is not None:
            k = torch.cat([k, self.bias_k.expand(1, batch, -1)])
            v = torch.cat([v, self.bias_v.expand(1, batch, -1)])
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        # (length, batch, E) -> (batch·heads, length, head_dim), as F.multi_head_attention_forward
        q = q.reshape(target, batch * heads, head_dim).transpose(0, 1)
        k = k.reshape(k.shape[0], batch * heads, head_dim).transpose(0, 1)
        v = v.reshape(v.shape[0], batch * heads, head_dim).transpose(0, 1)
        if self.add_zero_attn:
            zeros = q.new_zeros(batch * heads, 1, head_dim)
            k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            key_padding_mask = None if key_padding_mask is None else F.pad(key_padding_mask, (0, 1))
        source = k.shape[1]
        if key_padding_mask is not None:
            if key_padding_mask.shape != (batch, source):
                raise ShapeError(
                    f"key_padding_mask has shape {tuple(key_padding_mask.shape)}, expected "
                    f"(batch, source length) = ({batch}, {source})"
                )
            padding = key_padding_mask.view(batch, 1, 1, source).expand(-1, heads, -1, -1)
            padding = padding.reshape(batch * heads, 1, source)
            attn_mask = padding if attn_mask is None else attn_mask + padding
        dropout = self.dropout if self.training else 0.0

        if need_weights:
            scores = q * (1.0 / math.sqrt(head_dim)) @ k.transpose(-2, -1)
            if attn_mask is not None:
                scores = scores + attn_mask
            weights = scores.softmax(dim=-1)
            if dropout > 0.0:
                weights = F.dropout(weights, p=dropout)
            out = torch.bmm(weights, v).transpose(0, 1).reshape(target * batch, self.embed_dim)
            out = self.out_proj(out).view(target, batch, self.embed_dim)
            averaged = weights.view(batch, heads, target, source)
            returned: torch.Tensor | None = (
                averaged.mean(dim=1) if average_attn_weights else averaged
            )
            if not batched:
                out, returned = out.squeeze(1), returned.squeeze(0)  # type: ignore[union-attr]
        else:
            if attn_mask is not None:
                attn_mask = (
                    attn_mask.unsqueeze(0)
                    if attn_mask.shape[0] == 1
                    else attn_mask.view(batch, heads, -1, source)
                )
            out = F.scaled_dot_product_attention(
                q.view(batch, heads, target, head_dim),
                k.view(batch, heads, source, head_dim),
                v.view(batch, heads, source, head_dim),
                attn_mask,
                dropout,
                is_causal,
            )
            out = out.permute(2, 0, 1, 3).reshape(target * batch, self.embed_dim)
            out = self.out_proj(out).view(target, batch, self.embed_dim)
            returned = None
            if not batched:
                out = out.squeeze(1)
        if batched and self.batch_first:
            out = out.transpose(0, 1)
        return out, returned

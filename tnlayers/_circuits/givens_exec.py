"""Execute: Givens circuits on torch tensors without n × n products per gate.

Two autograd functions do the work, both on a *coordinate-major* state ``[rows, columns]`` (each
coordinate a contiguous row, so gathering a coordinate is one contiguous read):

- `rotate_rows` applies layers of disjoint 2 × 2 blocks to pairs of rows: one gather, one batched
  2 × 2 product and one scatter per layer. Its backward walks the layers in reverse and needs only
  the rows each layer read.
- `apply_segments` applies small dense blocks to windows of rows, one after another (a slice
  when the window is contiguous, a gather otherwise).

The ``tiled`` strategy (`tiled_forward`) builds the light-cone tiles' blocks with `rotate_rows`
on stacked identities, then applies one batched matmul per stage of disjoint tiles; its
backward is autograd's through those ordinary operations.

A segment's block is built in closed form when its gates form a staircase of neighbouring planes
(`staircase_blocks`, one cumulative product for all of them), and otherwise by `rotate_rows` on
the identity.

The blocks are general 2 × 2 matrices, not angles, so that noise added to the gate entries
(Chen et al.'s attack form ②, which breaks orthogonality) runs through the same code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import torch
from torch._C import DispatchKey
from torch.autograd.function import once_differentiable

from .givens_plan import GivensPlan

__all__ = [
    "apply_segments",
    "apply_stages",
    "circuit_matrix",
    "givens_forward",
    "rotate_rows",
    "rotation_blocks",
    "segment_blocks",
    "staircase_blocks",
    "tile_blocks",
    "tiled_forward",
]


def rotation_blocks(angles: torch.Tensor) -> torch.Tensor:
    """The 2 × 2 blocks ``[[cos θ, −sin θ], [sin θ, cos θ]]`` of angles ``[m]`` → ``[m, 2, 2]``."""
    c, s = torch.cos(angles), torch.sin(angles)
    return torch.stack((c, -s, s, c), dim=-1).reshape(*angles.shape, 2, 2)


# Below this many columns, a 2 × 2 block times a pair of rows is faster as two broadcast
# multiply-adds than as a batched matmul of thousands of tiny matrices (measured on the project
# CPU: 40–53 µs against 99–195 µs for 1,050 pairs of 16–64 columns; at 128 they tie, and at
# 256 columns, a layered batch, the matmul wins).
_ELEMENTWISE_COLUMNS = 64


def _rotate_pairs(blocks: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """``blocks @ pairs`` for blocks ``[k, 2, 2]`` and row pairs ``[k, 2, columns]``."""
    if pairs.shape[-1] > _ELEMENTWISE_COLUMNS:
        return torch.bmm(blocks, pairs)
    return torch.addcmul(blocks[:, :, 0:1] * pairs[:, 0:1], blocks[:, :, 1:2], pairs[:, 1:2])


class _RotateRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, state, blocks, layers):
        columns = state.shape[1]
        out = state.clone()
        read = []
        for rows, ids in layers:
            pairs = out.index_select(0, rows).view(-1, 2, columns)
            read.append(pairs)
            out.index_copy_(
                0, rows, _rotate_pairs(blocks.index_select(0, ids), pairs).reshape(-1, columns)
            )
        ctx.layers = layers
        ctx.save_for_backward(blocks, *read)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        blocks, *read = ctx.saved_tensors
        columns = grad.shape[1]
        grad = grad.clone()
        grad_blocks = torch.zeros_like(blocks)
        for (rows, ids), pairs in zip(reversed(ctx.layers), reversed(read), strict=True):
            g = grad.index_select(0, rows).view(-1, 2, columns)
            grad_blocks.index_add_(0, ids, torch.bmm(g, pairs.transpose(1, 2)))
            back = _rotate_pairs(blocks.index_select(0, ids).transpose(1, 2), g)
            grad.index_copy_(0, rows, back.view(-1, columns))
        return grad, grad_blocks, None


def rotate_rows(
    state: torch.Tensor, blocks: torch.Tensor, layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
) -> torch.Tensor:
    """Apply layers of 2 × 2 blocks to pairs of rows of ``state``.

    Parameters
    ----------
    state
        ``[rows, columns]``.
    blocks
        ``[m, 2, 2]``, one block per gate.
    layers
        Per layer: interleaved row pairs ``[2k]`` (``p0, q0, p1, q1, …``, all distinct) and the
        gate index of each pair ``[k]``. Rows ``(p, q)`` become ``block @ (row_p, row_q)``.

    Returns
    -------
    torch.Tensor
        ``[rows, columns]``.
    """
    return _RotateRows.apply(state, blocks, layers)


class _ApplySegments(torch.autograd.Function):
    # Each segment's input rows are copied into one zero-padded buffer [S, w, columns], so that
    # the backward pass gets every block's gradient from a single batched product at the end.
    @staticmethod
    def forward(ctx, state, mats, windows):
        out = state.clone()
        read = state.new_zeros(mats.shape[0], mats.shape[1], state.shape[1])
        for s, (window, k) in enumerate(windows):
            block, x = mats[s, :k, :k], read[s, :k]
            if isinstance(window, slice):
                x.copy_(out[window])
                torch.mm(block, x, out=out[window])
            else:
                torch.index_select(out, 0, window, out=x)
                out.index_copy_(0, window, block @ x)
        ctx.windows = windows
        ctx.save_for_backward(mats, read)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        mats, read = ctx.saved_tensors
        grad = grad.clone()
        seen = torch.zeros_like(read)
        for s in range(len(ctx.windows) - 1, -1, -1):
            window, k = ctx.windows[s]
            block, g = mats[s, :k, :k], seen[s, :k]
            if isinstance(window, slice):
                g.copy_(grad[window])
                torch.mm(block.T, g, out=grad[window])
            else:
                torch.index_select(grad, 0, window, out=g)
                grad.index_copy_(0, window, block.T @ g)
        return grad, torch.bmm(seen, read.transpose(1, 2)), None


def apply_segments(
    state: torch.Tensor,
    mats: torch.Tensor,
    windows: tuple[tuple[slice | torch.Tensor, int], ...],
) -> torch.Tensor:
    """Apply dense blocks ``mats[s, :k, :k]`` to the rows of each window, in order.

    ``state`` is ``[rows, columns]``; a window is a row ``slice`` or a row index tensor ``[k]``.
    """
    return _ApplySegments.apply(state, mats, windows)


def _layers_on(
    layers: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...], device: torch.device
) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    return tuple(
        (torch.tensor(rows, device=device), torch.tensor(ids, device=device))
        for rows, ids in layers
    )


@lru_cache(maxsize=256)
def _build_layers(plan: GivensPlan, device: torch.device) -> tuple:
    return _layers_on(plan.build_layers, device)


@lru_cache(maxsize=256)
def _rotate_layers(plan: GivensPlan, device: torch.device) -> tuple:
    return _layers_on(plan.rotate_layers, device)


@lru_cache(maxsize=256)
def _stair_tensors(
    plan: GivensPlan, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, ...]:
    """Index and masks of the staircases' closed form, computed once per plan, device and
    dtype (masks in the blocks' dtype: a boolean factor would be converted on every call)."""
    m = plan.circuit.num_gates
    gates = torch.tensor(plan.stair_gates, dtype=torch.long)
    gates = torch.where(gates < 0, m, gates)  # padding reads the block after the last gate
    swap = torch.tensor(plan.stair_swap, dtype=torch.bool)
    # Entries a, b, d, e of each slot's block, read as e, d, b, a when the rows are swapped
    # ([[a, b], [d, e]] with rows and columns exchanged is [[e, d], [b, a]]); entry-major, so
    # that the gathered values split into four [S, L] views.
    order = torch.where(swap[..., None], torch.tensor([3, 2, 1, 0]), torch.tensor([0, 1, 2, 3]))
    entries = (gates[..., None] * 4 + order).permute(2, 0, 1).reshape(-1)
    side = torch.arange(plan.segment_gates + 1)
    after = (side[None, :] > side[:, None]).to(dtype)  # [j, i]: i > j
    on_or_after = 1 - after.T  # [j, i]: i ≥ j
    descending = torch.tensor(plan.stair_descending, dtype=torch.bool)[:, None, None]
    return tuple(
        t.to(device).contiguous() for t in (entries, after, 1 - after, on_or_after, descending)
    )


class _StaircaseBlocks(torch.autograd.Function):
    """The staircases' blocks from their gates' entries ``a, b, d, e`` (each ``[S, L]``).

    In a staircase's own coordinates, with ``D[j, i] = d_j ⋯ d_{i−1}`` (``1`` for ``i ≤ j``)
    and ``e_{−1} = a_L = 1``, the transposed block is ``Mᵀ[j, i] = e_{j−1} · D[j, i] · a_i`` for
    ``i ≥ j``, ``Mᵀ[i+1, i] = b_i``, zero elsewhere; a descending staircase's block is flipped.

    The backward is derived by hand: ``∂D[j, i]/∂d_k = D[j, k] · D[k+1, i]`` for
    ``j ≤ k < i``, so the gradient of every ``d_k`` is one batched matmul — no division, so
    exact where an entry is zero. Autograd through the same forward recorded ~15 nodes and
    ``cumprod``'s backward (a zero check, reversed cumulative sums and a division).
    Differentiable once: a second derivative raises.
    """

    @staticmethod
    def forward(ctx, a, b, d, e, masks):
        after, until, on_or_after, descending = masks
        steps = a.shape[1]
        one = a.new_ones(a.shape[0], 1)
        a_ext, e_ext, d_ext = (
            torch.cat((a, one, one, e, one, d), 1).view(-1, 3, steps + 1).unbind(1)
        )
        # D by one cumulative product: 1 up to the diagonal, then d_j, d_{j+1}, … along a row.
        products = torch.addcmul(until, d_ext[:, None, :], after).cumprod_(-1)
        transposed = e_ext[:, :, None] * products
        transposed.mul_(a_ext[:, None, :]).mul_(on_or_after)
        transposed.diagonal(-1, 1, 2).copy_(b)
        ctx.save_for_backward(a_ext, e_ext, products)
        ctx.masks = masks
        matrix = transposed.transpose(1, 2)
        return torch.where(descending, matrix.flip(1, 2), matrix)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a_ext, e_ext, products = ctx.saved_tensors
        after, _, on_or_after, descending = ctx.masks
        steps = a_ext.shape[1] - 1
        transposed = torch.where(descending, grad.flip(1, 2), grad).transpose(1, 2)
        kept = transposed * on_or_after
        weighted = kept * products  # the gradient reaching e · D · a
        grad_a = torch.bmm(e_ext[:, None, :], weighted)[:, 0, :steps]
        grad_e = torch.bmm(weighted, a_ext[:, :, None])[:, 1:, 0]
        # Through D: R[j, k] = Σ_{i>k} ∂L/∂D[j, i] · D[k+1, i], then Σ_{j≤k} D[j, k] · R[j, k].
        through = kept.mul_(e_ext[:, :, None]).mul_(a_ext[:, None, :])
        rest = torch.bmm(through, (products[:, 1:, :] * after[:steps]).transpose(1, 2))
        grad_d = rest.mul_(products[:, :, :steps]).mul_(on_or_after[:, :steps]).sum(1)
        grad_b = transposed.diagonal(-1, 1, 2)
        return grad_a, grad_b, grad_d, grad_e, None


def staircase_blocks(plan: GivensPlan, blocks: torch.Tensor) -> torch.Tensor:
    """The staircase segments' matrices in closed form, ``[S, L + 1, L + 1]``.

    For gates ``[[a_t, b_t], [d_t, e_t]]`` on planes ``(t, t+1)`` applied in order
    ``t = 0 … L−1``, the product is lower Hessenberg:
    ``M[i, j] = e_{j−1} · d_j ⋯ d_{i−1} · a_i`` for ``i ≥ j`` (with ``e_{−1} = a_L = 1``) and
    ``M[j−1, j] = b_{j−1}`` (see `_StaircaseBlocks`). Padding slots read the block
    ``[[1, 0], [1, 1]]``: they only touch entries outside the segment's ``(k + 1) × (k + 1)``
    corner, which is all that is used.
    """
    entries, *masks = _stair_tensors(plan, blocks.device, blocks.dtype)
    pad = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=blocks.dtype, device=blocks.device)
    flat = torch.cat((blocks.reshape(-1), pad))
    a, b, d, e = flat.index_select(0, entries).view(4, -1, plan.segment_gates).unbind(0)
    return _StaircaseBlocks.apply(a, b, d, e, tuple(masks))


def segment_blocks(plan: GivensPlan, blocks: torch.Tensor) -> torch.Tensor:
    """Every segment's dense matrix on its support, ``[S, w, w]`` (top-left ``k × k`` used)."""
    width = plan.width
    parts = []
    if plan.staircases:
        stairs = staircase_blocks(plan, blocks)
        pad = width - stairs.shape[-1]
        parts.append(torch.nn.functional.pad(stairs, (0, pad, 0, pad)) if pad else stairs)
    if plan.generals:
        count = len(plan.generals)
        eye = torch.eye(width, dtype=blocks.dtype, device=blocks.device).repeat(count, 1)
        built = rotate_rows(eye, blocks, _build_layers(plan, blocks.device))
        parts.append(built.view(count, width, width))
    mats = torch.cat(parts) if len(parts) > 1 else parts[0]
    order = _segment_order(plan, blocks.device)
    return mats if order is None else mats.index_select(0, order)


@lru_cache(maxsize=256)
def _segment_order(plan: GivensPlan, device: torch.device) -> torch.Tensor | None:
    """Where each segment's block sits in [staircases…, generals…]; None if already in order."""
    order = [*plan.staircases, *plan.generals]
    if order == sorted(order):
        return None
    return torch.tensor(sorted(range(len(order)), key=order.__getitem__), device=device)


@lru_cache(maxsize=256)
def _windows(
    plan: GivensPlan, device: torch.device
) -> tuple[tuple[slice | torch.Tensor, int], ...]:
    return tuple(
        (
            slice(*seg.span) if seg.span else torch.tensor(seg.support, device=device),
            len(seg.support),
        )
        for seg in plan.segments
    )


@lru_cache(maxsize=256)
def _tile_tensors(plan: GivensPlan, device: torch.device) -> tuple:
    tiles = plan.tiles
    assert tiles is not None
    place = torch.tensor(tiles.place, dtype=torch.long, device=device)
    return place, _layers_on(tiles.build_layers, device)


def tiled_forward(state: torch.Tensor, blocks: torch.Tensor, plan: GivensPlan) -> torch.Tensor:
    """Apply the circuit to the rows of ``state`` (``[n, columns]``) by its light-cone tiles:
    `tile_blocks`, then `apply_stages`."""
    return apply_stages(state, tile_blocks(blocks, plan), plan)


def tile_blocks(blocks: torch.Tensor, plan: GivensPlan) -> torch.Tensor:
    """Every stage slot's ``2r × 2r`` block, ``[slots, 2r, 2r]``: the tiles' blocks built at
    once (``rotate_rows`` on stacked identities) and scattered into their slots, the identity in
    every slot whose window has no gates."""
    tiles = plan.tiling()
    w = tiles.width
    place, build = _tile_tensors(plan, blocks.device)
    eye = torch.eye(w, dtype=blocks.dtype, device=blocks.device)
    built = rotate_rows(eye.repeat(tiles.tiles, 1), blocks, build).view(tiles.tiles, w, w)
    return eye.expand(tiles.slots, w, w).index_copy(0, place, built)


def apply_stages(state: torch.Tensor, mats: torch.Tensor, plan: GivensPlan) -> torch.Tensor:
    """Apply the slots' blocks ``mats`` (`tile_blocks`) to the rows of ``state``
    (``[n, columns]``), one batched matmul per stage on the zero-padded state viewed as
    ``(K, 2r, columns)``, shifted by ``r`` rows between stages of different parity."""
    tiles = plan.tiling()
    w, r = tiles.width, tiles.radius
    n, columns = state.shape
    # The state with coordinate c at row c + shift. Stages of one parity want shift r, the
    # other shift 0 (their windows then start at row 0 and tile the whole buffer, one bmm, no
    # slicing); the rows shifted in and out are zero padding, which the identity parts of the
    # blocks keep zero.
    shift = r
    padded = torch.nn.functional.pad(state, (0, 0, r, tiles.rows - r - n))
    # Every stage has the same number of windows, so the slots split into one view per stage:
    # unbind's backward stacks the stages' gradients once, where slicing each stage out of
    # ``mats`` zero-filled a gradient of all the slots per stage (a third of a training step).
    per_stage = mats.view(len(tiles.stages), -1, w, w).unbind(0)
    for (offset, count), stage_mats in zip(tiles.stages, per_stage, strict=True):
        wanted = r - offset
        if wanted != shift:
            move = wanted - shift
            padded = torch.nn.functional.pad(padded, (0, 0, move, -move))
            shift = wanted
        windows = padded.view(count, w, columns)
        padded = torch.bmm(stage_mats, windows).view(count * w, columns)
    return padded[shift : shift + n]


def givens_forward(
    x: torch.Tensor, blocks: torch.Tensor, plan: GivensPlan, strategy: str
) -> torch.Tensor:
    """``x @ U.T`` for the circuit's matrix ``U``, by the given strategy.

    Parameters
    ----------
    x
        ``[batch, n]``.
    blocks
        ``[m, 2, 2]`` gate blocks (from ``rotation_blocks`` or perturbed ones).
    plan, strategy
        The schedule and one of ``"layered" | "blocked" | "materialize" | "tiled"``.

    Returns
    -------
    torch.Tensor
        ``[batch, n]``.
    """
    if strategy == "layered":
        layers = _rotate_layers(plan, x.device)
        return rotate_rows(x.T.contiguous(), blocks, layers).T
    if strategy == "tiled":
        return tiled_forward(x.T, blocks, plan).T
    if strategy == "blocked":
        mats = segment_blocks(plan, blocks)
        return apply_segments(x.T.contiguous(), mats, _windows(plan, x.device)).T
    return x @ circuit_matrix(blocks, plan, plan.build).T


def circuit_matrix(blocks: torch.Tensor, plan: GivensPlan, strategy: str) -> torch.Tensor:
    """The circuit's ``n × n`` matrix ``U`` from its gate blocks, applying the circuit to the
    identity's columns by ``strategy`` (any but ``"materialize"``, which builds it this way:
    by the plan's ``build``)."""
    eye = torch.eye(plan.circuit.n, dtype=blocks.dtype, device=blocks.device)
    if strategy == "blocked":  # the segments applied to the identity's rows give U itself
        return apply_segments(eye, segment_blocks(plan, blocks), _windows(plan, blocks.device))
    return givens_forward(eye, blocks, plan, strategy).T


# ---------------------------------------------------------------- the compiled path
# torch.compile cannot trace the executors above (Python loops over a plan's index tensors,
# custom autograd functions that keep plan objects on ctx), and a graph break would defeat
# fullgraph=True. Under compilation a layer calls these two opaque operators instead: the graph
# holds one call per layer, the plan travels as an integer token, and the eager executor runs
# inside (the backward recomputes the forward pass, once, to differentiate it).
_PLANS: dict[int, GivensPlan] = {}
_TOKENS: dict[int, int] = {}


def plan_token(plan: GivensPlan) -> int:
    """An integer naming ``plan`` for the compiled operators (kept alive while named)."""
    token = _TOKENS.get(id(plan))
    if token is None or _PLANS.get(token) is not plan:
        token = len(_PLANS)
        _PLANS[token] = plan
        _TOKENS[id(plan)] = token
    return token


@torch.library.custom_op("tnlayers::givens_apply", mutates_args=())
def givens_apply(x: torch.Tensor, blocks: torch.Tensor, token: int, strategy: str) -> torch.Tensor:
    """``givens_forward`` as one opaque operator, for compiled graphs."""
    with torch.no_grad():
        return givens_forward(x, blocks, _PLANS[token], strategy).contiguous()


@givens_apply.register_fake
def _(x: torch.Tensor, blocks: torch.Tensor, token: int, strategy: str) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@contextmanager
def _autograd_inside_operator() -> Iterator[None]:
    """Record autograd inside a custom operator's body, which runs below the autograd keys.

    The backward operator differentiates the eager executor by recomputing it; its body is an
    opaque kernel to the compiler, so this is the one place a tape is needed inside a kernel.
    """
    keys = [getattr(DispatchKey, name) for name in _AUTOGRAD_KEYS if hasattr(DispatchKey, name)]
    excluded = [torch._C._dispatch_tls_is_dispatch_key_excluded(key) for key in keys]
    try:
        for key in keys:
            torch._C._dispatch_tls_set_dispatch_key_excluded(key, False)
        with torch.enable_grad():
            yield
    finally:
        for key, was in zip(keys, excluded, strict=True):
            torch._C._dispatch_tls_set_dispatch_key_excluded(key, was)


_AUTOGRAD_KEYS = (
    "ADInplaceOrView",
    "AutogradFunctionality",
    "AutogradOther",
    "AutogradNestedTensor",
)


@torch.library.custom_op("tnlayers::givens_apply_backward", mutates_args=())
def givens_apply_backward(
    grad: torch.Tensor, x: torch.Tensor, blocks: torch.Tensor, token: int, strategy: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``givens_apply`` with respect to ``x`` and ``blocks``."""
    with _autograd_inside_operator():
        x_, blocks_ = x.detach().requires_grad_(), blocks.detach().requires_grad_()
        y = givens_forward(x_, blocks_, _PLANS[token], strategy)
        grad_x, grad_blocks = torch.autograd.grad(y, (x_, blocks_), grad)
    return grad_x.contiguous(), grad_blocks.contiguous()


@givens_apply_backward.register_fake
def _(
    grad: torch.Tensor, x: torch.Tensor, blocks: torch.Tensor, token: int, strategy: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(x), torch.empty_like(blocks)


def _setup(ctx, inputs, output) -> None:
    x, blocks, token, strategy = inputs
    ctx.save_for_backward(x, blocks)
    ctx.token, ctx.strategy = token, strategy


def _backward(ctx, grad):
    x, blocks = ctx.saved_tensors
    grad_x, grad_blocks = givens_apply_backward(grad, x, blocks, ctx.token, ctx.strategy)
    return grad_x, grad_blocks, None, None


givens_apply.register_autograd(_backward, setup_context=_setup)

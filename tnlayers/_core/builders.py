"""Builders for the families of the four papers; each returns an ordinary `Network`."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import ArgumentTypeError, NetworkSpecError
from .factorize import factorize, kronecker_factors
from .network import Network

__all__ = ["kronecker", "low_rank", "mpo"]

Dims = int | Sequence[int]


def _is_count(value: object) -> bool:
    """A positive ``int`` (``bool`` is an ``int`` to Python, never a size here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def leg_network(
    tensors: list[tuple[str, list[tuple[str, int]]]],
    ins: tuple[int, ...],
    outs: tuple[int, ...],
    in_features: int,
    out_features: int,
) -> Network:
    """A builder's network: input legs ``i1 … in``, output legs ``j1 … jm`` (padded as needed)."""
    return Network(
        tensors,
        [f"i{k}" for k in range(1, len(ins) + 1)],
        [f"j{k}" for k in range(1, len(outs) + 1)],
        in_features=in_features,
        out_features=out_features,
        allow_padding=True,
    )


def check_dims(name: str, dims: object) -> None:
    """``dims`` is a positive integer or a non-empty sequence of them, else a clear error."""
    if _is_count(dims):
        return
    if isinstance(dims, Sequence) and not isinstance(dims, str):
        if dims and all(_is_count(d) for d in dims):
            return
        raise NetworkSpecError(f"{name} must be positive integers, got {tuple(dims)!r}")
    if isinstance(dims, int) and not isinstance(dims, bool):
        raise NetworkSpecError(f"{name} must be a positive integer, got {dims!r}")
    raise ArgumentTypeError(
        f"{name} must be a positive integer (a feature size) or a sequence of leg sizes, "
        f"got {dims!r} ({type(dims).__name__})"
    )


def check_count(name: str, value: object) -> None:
    """``value`` is a positive integer, else a clear error."""
    if not _is_count(value):
        raise NetworkSpecError(f"{name} must be a positive integer, got {value!r}")


def as_dims(name: str, dims: Dims, parts: int) -> tuple[tuple[int, ...], int]:
    """Leg sizes for ``dims`` and the feature size they serve (below the product if padded)."""
    check_dims(name, dims)
    if isinstance(dims, int):
        split = factorize(dims, parts)
        return split.dims, split.features
    dims = tuple(dims)
    return dims, math.prod(dims)


def kron_dims(name: str, dims: Dims, parts: int) -> tuple[tuple[int, ...], int]:
    """Like ``as_dims``, but integers split by QiMLP's rule (factors as large as possible)."""
    check_dims(name, dims)
    if isinstance(dims, int):
        return kronecker_factors(dims, parts), dims
    return as_dims(name, dims, parts)


def bond_sizes(name: str, bond: int | Sequence[int], count: int, what: str) -> tuple[int, ...]:
    """``count`` bond sizes from one size or one per bond, validated; ``what`` names the network
    in the error (``"an MPO with 4 cores"``)."""
    if isinstance(bond, int) and not isinstance(bond, bool):
        if count and bond < 1:
            raise NetworkSpecError(f"{name} must be a positive integer, got {bond!r}")
        return (bond,) * count
    if not (isinstance(bond, Sequence) and not isinstance(bond, str)):
        raise ArgumentTypeError(
            f"{name} must be a positive integer or one per bond, got {bond!r} "
            f"({type(bond).__name__})"
        )
    sizes = tuple(bond)
    if len(sizes) != count:
        raise NetworkSpecError(f"{what} has {count} bonds, got {name}={bond!r}")
    for k, size in enumerate(sizes, start=1):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise NetworkSpecError(f"bond b{k} must be a positive integer, got {size!r}")
    return sizes


def default_parts(*dims: Dims) -> int:
    sizes: list[int] = []
    for d in dims:
        if not isinstance(d, int):
            return len(tuple(d))
        sizes.append(d)
    # Aim for legs of size about 8, the sweet spot of MPO-Net's layers.
    return max(2, math.ceil(math.log(max(sizes), 8) - 1e-9))


def mpo(
    in_dims: Dims,
    out_dims: Dims,
    bond: int | Sequence[int],
    *,
    cores: int | None = None,
) -> Network:
    r"""A matrix product operator (tensor train) in the convention of MPO-Net (Gao et al. 2020).

    Core ``k`` is ``core{k}`` with legs ``(b{k-1}, j{k}, i{k}, b{k})`` (the boundary bonds of size 1
    are left out), so that

    $$W_{(j_1\dots j_n),(i_1\dots i_n)} = \sum_{b} \prod_k G_k[b_{k-1}, j_k, i_k, b_k].$$

    Parameters
    ----------
    in_dims, out_dims
        Input and output leg sizes ``I_k`` and ``J_k`` (the paper's sub- and superscripts of
        ``M_{I_1..I_n}^{J_1..J_n}(D)``), or a feature size to factorise automatically.
    bond
        Bond size ``D`` for every bond, or one size per bond (``n - 1`` values).
    cores
        Number of cores when both sizes are given as integers (default: legs of size about 8).

    Examples
    --------
    >>> mpo((4, 7, 7, 4), (4, 4, 4, 4), 2).num_params  # MPO-Net's FC2 layer 1 at D = 2
    288
    """
    check_dims("in_dims", in_dims)
    check_dims("out_dims", out_dims)
    if cores is not None:
        check_count("cores", cores)
    parts = cores if cores is not None else default_parts(in_dims, out_dims)
    ins, in_features = as_dims("in_dims", in_dims, parts)
    outs, out_features = as_dims("out_dims", out_dims, parts)
    if len(ins) != len(outs):
        raise NetworkSpecError(
            f"an MPO needs as many input legs as output legs: in_dims {ins} has {len(ins)}, "
            f"out_dims {outs} has {len(outs)} (use size-1 legs to even them out)"
        )
    n = len(ins)
    bonds = bond_sizes("bond", bond, n - 1, f"an MPO with {n} cores")
    tensors = []
    for k in range(1, n + 1):
        legs: list[tuple[str, int]] = []
        if k > 1:
            legs.append((f"b{k - 1}", bonds[k - 2]))
        legs += [(f"j{k}", outs[k - 1]), (f"i{k}", ins[k - 1])]
        if k < n:
            legs.append((f"b{k}", bonds[k - 1]))
        tensors.append((f"core{k}", legs))
    return leg_network(tensors, ins, outs, in_features, out_features)


def kronecker(
    in_dims: Dims, out_dims: Dims, terms: int = 1, *, bodies: int | None = None
) -> Network:
    r"""A sum of ``terms`` Kronecker products with one factor ("body") per leg, as in QiMLP.

    Body ``m`` is ``body{m}`` with legs ``(k, i{m}, j{m})``, the released QiMLP code's
    ``[k, p_m, q_m]`` storage. The term index ``k`` is shared by every body (a hyperedge for three
    or more bodies), and

    $$W = \sum_{k} A_1^{(k)\top} \otimes \dots \otimes A_M^{(k)\top}.$$

    Parameters
    ----------
    in_dims, out_dims
        Input sizes ``p_m`` and output sizes ``q_m`` of the bodies, or feature sizes to split into
        ``bodies`` legs by QiMLP's rule (smallest factor as large as possible, then the
        largest: 784 → (28, 28), (7, 7, 16), (4, 4, 7, 7)).
    terms
        Number of Kronecker terms (the paper's copies ``K``).
    bodies
        Number of bodies when both sizes are integers (default 2).

    Examples
    --------
    >>> kronecker((28, 28), (28, 28), terms=1).num_params
    1568
    """
    check_count("terms", terms)
    check_dims("in_dims", in_dims)
    check_dims("out_dims", out_dims)
    if bodies is not None:
        check_count("bodies", bodies)
    parts = (
        bodies
        if bodies is not None
        else (
            2
            if isinstance(in_dims, int) and isinstance(out_dims, int)
            else default_parts(in_dims, out_dims)
        )
    )
    ins, in_features = kron_dims("in_dims", in_dims, parts)
    outs, out_features = kron_dims("out_dims", out_dims, parts)
    if len(ins) != len(outs):
        raise NetworkSpecError(
            f"every body needs one input and one output leg: in_dims {ins} has {len(ins)} legs, "
            f"out_dims {outs} has {len(outs)}"
        )
    if len(ins) == 1 and terms != 1:
        raise NetworkSpecError("a one-body Kronecker sum of several terms is a plain dense matrix")
    term_leg = [("k", terms)] if len(ins) > 1 else []
    tensors = [
        (f"body{m}", [*term_leg, (f"i{m}", p), (f"j{m}", q)])
        for m, (p, q) in enumerate(zip(ins, outs, strict=True), start=1)
    ]
    return leg_network(tensors, ins, outs, in_features, out_features)


def low_rank(in_features: int, out_features: int, rank: int) -> Network:
    """Two tensors ``U (out × rank)`` and ``V (rank × in)`` with ``W = U V``.

    Examples
    --------
    >>> low_rank(784, 256, 16).num_params
    16640
    """
    for name, value in (
        ("in_features", in_features),
        ("out_features", out_features),
        ("rank", rank),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise NetworkSpecError(f"{name} must be a positive integer, got {value!r}")
    return Network(
        {"U": {"j": out_features, "r": rank}, "V": {"r": rank, "i": in_features}},
        ["i"],
        ["j"],
    )

"""Builders for the classic tensor-network topologies beyond the papers' families: tensor ring,
CP, Tucker, binary tree, BTT/Monarch, 2-D grid, butterfly and block-diagonal. Each returns an
ordinary `Network`; sizes given as integers are factorised as ``mpo`` does."""

from __future__ import annotations

from collections.abc import Sequence

from .builders import (
    Dims,
    as_dims,
    bond_sizes,
    check_count,
    check_dims,
    default_parts,
    leg_network,
)
from .errors import ArgumentTypeError, NetworkSpecError
from .network import Network

__all__ = [
    "block_diagonal",
    "btt",
    "butterfly",
    "cp",
    "grid",
    "monarch",
    "tensor_ring",
    "tree",
    "tucker",
]


def _legs(
    in_dims: Dims,
    out_dims: Dims,
    parts: int | None,
    parts_name: str,
    *,
    paired: bool,
    what: str,
) -> tuple[tuple[int, ...], int, tuple[int, ...], int]:
    """Input and output leg sizes and the features they serve; ``paired``: as many of each.

    ``parts`` (called ``parts_name`` in the caller's signature) splits integer sizes."""
    check_dims("in_dims", in_dims)
    check_dims("out_dims", out_dims)
    if parts is not None:
        check_count(parts_name, parts)
    count = parts if parts is not None else default_parts(in_dims, out_dims)
    ins, in_features = as_dims("in_dims", in_dims, count)
    outs, out_features = as_dims("out_dims", out_dims, count)
    if paired and len(ins) != len(outs):
        raise NetworkSpecError(
            f"{what} pairs input and output legs: in_dims {ins} has {len(ins)} legs, "
            f"out_dims {outs} has {len(outs)} (use size-1 legs to even them out)"
        )
    return ins, in_features, outs, out_features


def tensor_ring(
    in_dims: Dims,
    out_dims: Dims,
    bond: int | Sequence[int],
    *,
    cores: int | None = None,
) -> Network:
    r"""A tensor ring: an MPO whose last core is joined to the first by one more bond.

    Core ``k`` is ``core{k}`` with legs ``(b{k-1}, j{k}, i{k}, b{k})`` as in
    [`mpo`][tnlayers.mpo], and the closing bond ``b{n}`` is core ``n``'s right and core 1's left
    leg, so that

    $$W_{(j_1\dots j_n),(i_1\dots i_n)} = \operatorname{tr} \prod_k G_k[:, j_k, i_k, :].$$

    ``Σ_k D_{k-1} J_k I_k D_k`` parameters: ``bond² · Σ_k I_k J_k`` for one bond size.

    Parameters
    ----------
    in_dims, out_dims
        Input and output leg sizes ``I_k`` and ``J_k``, or feature sizes to factorise.
    bond
        Bond size for every bond, or one per bond (``n`` values: ``b1 … b{n-1}``, then the
        closing ``b{n}``).
    cores
        Number of cores (at least 2) when both sizes are integers (default: legs of about 8).

    Examples
    --------
    >>> tensor_ring((4, 7, 7, 4), (4, 4, 4, 4), 2).num_params  # 2² · (16 + 28 + 28 + 16)
    352
    """
    ins, in_features, outs, out_features = _legs(
        in_dims, out_dims, cores, "cores", paired=True, what="a tensor ring"
    )
    n = len(ins)
    if n < 2:
        raise NetworkSpecError(
            f"a tensor ring needs at least 2 cores, got {n} (in_dims {ins}); use mpo for one"
        )
    bonds = bond_sizes("bond", bond, n, f"a tensor ring of {n} cores")
    tensors = []
    for k in range(1, n + 1):
        left = f"b{n}" if k == 1 else f"b{k - 1}"
        size_left = bonds[n - 1] if k == 1 else bonds[k - 2]
        legs = [(left, size_left), (f"j{k}", outs[k - 1]), (f"i{k}", ins[k - 1])]
        legs.append((f"b{k}", bonds[k - 1]))
        tensors.append((f"core{k}", legs))
    return leg_network(tensors, ins, outs, in_features, out_features)


def cp(
    in_dims: Dims,
    out_dims: Dims,
    rank: int,
    *,
    parts: int | None = None,
) -> Network:
    r"""A canonical polyadic (CP) decomposition: one factor per leg, all sharing one rank index.

    Input factor ``a{m}`` has legs ``(r, i{m})``, output factor ``c{m}`` legs ``(r, j{m})``; the
    rank index ``r`` is a hyperedge joining them all, so that

    $$W_{(j_1\dots),(i_1\dots)} = \sum_r \prod_m A_m[r, i_m] \prod_m C_m[r, j_m].$$

    ``rank · (Σ I_k + Σ J_k)`` parameters. The two sides may have different numbers of legs.

    Parameters
    ----------
    in_dims, out_dims
        Leg sizes, or feature sizes to factorise into ``parts`` legs each.
    rank
        ``R``, the number of rank-one terms.
    parts
        Legs per side when sizes are integers (default: legs of about 8).

    Examples
    --------
    >>> cp((4, 7, 7, 4), (4, 4, 4, 4), 10).num_params  # 10 · (22 + 16)
    380
    """
    check_count("rank", rank)
    ins, in_features, outs, out_features = _legs(
        in_dims, out_dims, parts, "parts", paired=False, what="a CP network"
    )
    tensors: list[tuple[str, list[tuple[str, int]]]] = [
        (f"a{m}", [("r", rank), (f"i{m}", size)]) for m, size in enumerate(ins, start=1)
    ]
    tensors += [(f"c{m}", [("r", rank), (f"j{m}", size)]) for m, size in enumerate(outs, start=1)]
    return leg_network(tensors, ins, outs, in_features, out_features)


def tucker(
    in_dims: Dims,
    out_dims: Dims,
    ranks: int | Sequence[int],
    *,
    parts: int | None = None,
) -> Network:
    r"""A Tucker network: a core with one rank leg per open leg, and one factor per open leg.

    The core ``core`` has legs ``(s{1} …, t{1} …)``, input factor ``u{m}`` legs ``(i{m}, s{m})``
    and output factor ``v{m}`` legs ``(j{m}, t{m})``, so that

    $$W_{(j\dots),(i\dots)} = \sum_{s,t} G[s_1 \dots, t_1 \dots] \prod_m U_m[i_m, s_m]
    \prod_m V_m[j_m, t_m].$$

    ``Π ranks + Σ size·rank`` parameters.

    Parameters
    ----------
    in_dims, out_dims
        Leg sizes, or feature sizes to factorise into ``parts`` legs each.
    ranks
        One rank for every leg, or one per leg: inputs first, then outputs.
    parts
        Legs per side when sizes are integers (default: legs of about 8).

    Examples
    --------
    >>> tucker((28, 28), (16, 16), 4).num_params  # 4⁴ + 4 · (28 + 28 + 16 + 16)
    608
    """
    ins, in_features, outs, out_features = _legs(
        in_dims, out_dims, parts, "parts", paired=False, what="a Tucker network"
    )
    legs = len(ins) + len(outs)
    if isinstance(ranks, int) and not isinstance(ranks, bool):
        check_count("ranks", ranks)
        sizes: tuple[int, ...] = (ranks,) * legs
    elif isinstance(ranks, Sequence) and not isinstance(ranks, str):
        sizes = tuple(ranks)
        if len(sizes) != legs:
            raise NetworkSpecError(
                f"a Tucker network with {len(ins)} input and {len(outs)} output legs needs "
                f"{legs} ranks (inputs first, then outputs), got ranks={tuple(ranks)!r}"
            )
        for k, size in enumerate(sizes):
            check_count(f"ranks[{k}]", size)
    else:
        raise ArgumentTypeError(
            f"ranks must be a positive integer or one per leg, got {ranks!r} "
            f"({type(ranks).__name__})"
        )
    in_ranks, out_ranks = sizes[: len(ins)], sizes[len(ins) :]
    core = [(f"s{m}", r) for m, r in enumerate(in_ranks, start=1)]
    core += [(f"t{m}", r) for m, r in enumerate(out_ranks, start=1)]
    tensors: list[tuple[str, list[tuple[str, int]]]] = [("core", core)]
    tensors += [
        (f"u{m}", [(f"i{m}", size), (f"s{m}", r)])
        for m, (size, r) in enumerate(zip(ins, in_ranks, strict=True), start=1)
    ]
    tensors += [
        (f"v{m}", [(f"j{m}", size), (f"t{m}", r)])
        for m, (size, r) in enumerate(zip(outs, out_ranks, strict=True), start=1)
    ]
    return leg_network(tensors, ins, outs, in_features, out_features)


def tree(
    in_dims: Dims,
    out_dims: Dims,
    bond: int,
    *,
    leaves: int | None = None,
) -> Network:
    r"""A binary tree tensor network: leaves carry the open legs, internal nodes only bonds.

    Leaf ``k`` is ``leaf{k}`` with legs ``(i{k}, j{k}, e…)``, ``e…`` its bond to its parent.
    Leaves are paired left to right into nodes ``node{level}_{index}``, each joining its two
    children's bonds and a bond to its own parent; an odd one out goes up a level alone; the
    root joins its two children only. Every bond has size ``bond``. With ``n`` leaves there are
    ``n − 1`` internal nodes: ``bond · Σ_k I_k J_k + (n − 2) · bond³ + bond²`` parameters for
    ``n ≥ 2``.

    Parameters
    ----------
    in_dims, out_dims
        Leg sizes (one input and one output leg per leaf), or feature sizes to factorise.
    bond
        Size of every bond.
    leaves
        Number of leaves when both sizes are integers (default: legs of about 8).

    Examples
    --------
    >>> tree((4, 7, 7, 4), (4, 4, 4, 4), 3).num_params  # 3·88 + 2·27 + 9
    327
    """
    check_count("bond", bond)
    ins, in_features, outs, out_features = _legs(
        in_dims, out_dims, leaves, "leaves", paired=True, what="a tree"
    )
    n = len(ins)
    if n == 1:
        tensors = [("leaf1", [("i1", ins[0]), ("j1", outs[0])])]
        return leg_network(tensors, ins, outs, in_features, out_features)
    legs: dict[str, list[tuple[str, int]]] = {
        f"leaf{k}": [(f"i{k}", ins[k - 1]), (f"j{k}", outs[k - 1])] for k in range(1, n + 1)
    }
    level_nodes = list(legs)
    level, bonds = 0, 0
    while len(level_nodes) > 1:
        level += 1
        parents: list[str] = []
        for index in range(0, len(level_nodes) - 1, 2):
            parent = f"node{level}_{index // 2 + 1}"
            legs[parent] = []
            for child in level_nodes[index : index + 2]:
                bonds += 1
                legs[child].append((f"e{bonds}", bond))
                legs[parent].append((f"e{bonds}", bond))
            parents.append(parent)
        if len(level_nodes) % 2:  # the odd one out goes up alone
            parents.append(level_nodes[-1])
        level_nodes = parents
    return leg_network(list(legs.items()), ins, outs, in_features, out_features)


def btt(in_dims: Dims, out_dims: Dims, rank: int) -> Network:
    r"""A Block Tensor-Train (Qiu et al. 2024, "Compute Better Spent") of two cores.

    ``A`` has legs ``(i1, i2, j1, r)`` and ``B`` legs ``(j1, i1, r, j2)``: the first input leg
    ``i1`` and the first output leg ``j1`` are *shared open* legs, carried by both cores, so
    that

    $$W_{(j_1 j_2),(i_1 i_2)} = \sum_r A[i_1, i_2, j_1, r] \, B[j_1, i_1, r, j_2].$$

    For each ``(i1, j1)`` pair the map is a rank-``r`` product; run on an input it is two
    batched matrix products (batch ``i1`` then ``j1``), never a dense matrix.
    ``r · I1 · J1 · (I2 + J2)`` parameters.

    Parameters
    ----------
    in_dims, out_dims
        ``(I1, I2)`` and ``(J1, J2)``, or feature sizes split into two balanced legs.
    rank
        ``r``.

    Examples
    --------
    >>> btt((32, 32), (32, 32), 1).num_params  # Monarch of 1024 × 1024: 2 · 32³
    65536
    """
    check_count("rank", rank)
    ins, in_features, outs, out_features = _legs(
        in_dims, out_dims, 2, "parts", paired=True, what="a BTT"
    )
    if len(ins) != 2:
        raise NetworkSpecError(
            f"a BTT has two legs per side (I1, I2) and (J1, J2), got in_dims {ins} and out_dims "
            f"{outs}"
        )
    (i1, i2), (j1, j2) = ins, outs
    tensors = [
        ("A", [("i1", i1), ("i2", i2), ("j1", j1), ("r", rank)]),
        ("B", [("j1", j1), ("i1", i1), ("r", rank), ("j2", j2)]),
    ]
    return leg_network(tensors, ins, outs, in_features, out_features)


def monarch(in_features: int, out_features: int) -> Network:
    r"""A Monarch matrix (Dao et al. 2022): the rank-1 [`btt`][tnlayers.btt] of balanced legs.

    ``in_features`` and ``out_features`` are each split into two balanced legs (padded like
    ``mpo`` when a size splits badly); ``I1 · J1 · (I2 + J2)`` parameters, ``2 n^{3/2}`` for a
    square ``n × n`` layer whose size is a square.

    Examples
    --------
    >>> monarch(1024, 1024).num_params
    65536
    """
    check_count("in_features", in_features)
    check_count("out_features", out_features)
    return btt(in_features, out_features, 1)


def grid(
    in_dims: Dims,
    out_dims: Dims,
    bond: int,
    *,
    shape: tuple[int, int] | None = None,
) -> Network:
    r"""A 2-D grid of tensors (PEPS-like): site ``k`` carries ``(i_k, j_k)`` and a bond to each
    neighbour on its right and below.

    Sites are numbered row by row on a ``rows × cols`` grid; site ``(r, c)`` is ``site{r}_{c}``
    (from 1) with legs ``i{k}``, ``j{k}`` (``k = (r − 1)·cols + c``), ``h{r}_{c}`` to its right
    neighbour and ``v{r}_{c}`` to the one below, every bond of size ``bond``. A 1 × n grid is an
    MPO, a 2 × 2 grid a ring of four. ``Σ_k I_k J_k · bond^{deg(k)}`` parameters, ``deg(k)`` the
    number of neighbours of site ``k``. Contracting a grid is exponential in its width, so keep
    the smaller side short.

    Parameters
    ----------
    in_dims, out_dims
        One input and one output leg per site, or feature sizes to factorise (into 4 legs by
        default).
    bond
        Size of every bond.
    shape
        ``(rows, cols)`` with ``rows · cols`` the number of sites (default: the squarest).

    Examples
    --------
    >>> grid((2, 2, 2, 2, 2, 2), (2, 2, 2, 2, 2, 2), 3, shape=(2, 3)).num_params  # 4·(4·9 + 2·27)
    360
    """
    check_count("bond", bond)
    parts = None if shape is None else _grid_sites(shape)
    ins, in_features, outs, out_features = _legs(
        in_dims, out_dims, parts, "shape", paired=True, what="a grid"
    )
    n = len(ins)
    if shape is None:
        rows = max(r for r in range(1, int(n**0.5) + 1) if n % r == 0)
        shape = (rows, n // rows)
    rows, cols = shape
    if rows * cols != n:
        raise NetworkSpecError(
            f"a {rows} × {cols} grid has {rows * cols} sites, but there are {n} input legs {ins}"
        )
    legs: dict[str, list[tuple[str, int]]] = {}
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            k = (r - 1) * cols + c
            site = [(f"i{k}", ins[k - 1]), (f"j{k}", outs[k - 1])]
            if c > 1:
                site.append((f"h{r}_{c - 1}", bond))
            if c < cols:
                site.append((f"h{r}_{c}", bond))
            if r > 1:
                site.append((f"v{r - 1}_{c}", bond))
            if r < rows:
                site.append((f"v{r}_{c}", bond))
            legs[f"site{r}_{c}"] = site
    return leg_network(list(legs.items()), ins, outs, in_features, out_features)


def _grid_sites(shape: object) -> int:
    if not (
        isinstance(shape, tuple)
        and len(shape) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
    ):
        raise ArgumentTypeError(f"shape must be a pair of positive integers, got {shape!r}")
    return shape[0] * shape[1]


def butterfly(features: int, *, factors: int | None = None) -> Network:
    r"""A butterfly matrix: ``log₂ n`` factors, each ``n/2`` independent 2 × 2 blocks.

    The ``n`` features (``features`` rounded up to a power of two, zero-padded like ``mpo``) are
    indexed by ``L = log₂ n`` bits, most significant first: input legs ``i1 … iL`` and output
    legs ``j1 … jL``, each of size 2. Factor ``k`` (``f{k}``) mixes bit ``k``: for every value
    of the other bits it holds one 2 × 2 block ``(j_k, i_k)``. The other bits *pass through* it —
    bits already mixed arrive as outputs ``j_{<k}``, bits still to mix as inputs ``i_{>k}`` — so
    its legs are ``(j1 … j_{k-1}, j_k, i_k, i_{k+1} … iL)``, shared with the neighbouring
    factors, and

    $$W_{j, i} = \prod_{k=1}^{L} f_k[j_1 \dots j_{k-1}, j_k, i_k, i_{k+1} \dots i_L].$$

    Applied to an input, factor 1 runs first: each factor is one batched 2 × 2 matrix product
    over the ``n/2`` values of the other bits (Dao et al. 2019, "Learning Fast Algorithms for
    Linear Transforms Using Butterfly Factorizations"). Every factor has ``2n`` entries:
    ``2 n · L`` parameters in all. With ``factors = m < L`` only the first ``m`` bits are mixed
    and bits ``m+1 … L`` are pass-through legs ``p{k}`` of the whole network (listed as inputs
    and as outputs): ``W`` is then block-diagonal in them.

    Parameters
    ----------
    features
        ``n``; the layer is ``n × n``. Padded up to a power of two (at least 2).
    factors
        Number of factors ``m`` (default, and at most, ``L``).

    Examples
    --------
    >>> net = butterfly(1024)
    >>> len(net.tensor_names), net.num_params  # 10 factors of 2 · 1024 entries
    (10, 20480)
    >>> butterfly(8, factors=2).passthrough
    ('p3',)
    """
    check_count("features", features)
    bits = max(1, (features - 1).bit_length())
    if factors is None:
        factors = bits
    check_count("factors", factors)
    if factors > bits:
        raise NetworkSpecError(
            f"a butterfly over {2**bits} features (padded from {features}) has {bits} bits, "
            f"so at most {bits} factors; got factors={factors}"
        )
    inputs = [f"i{k}" if k <= factors else f"p{k}" for k in range(1, bits + 1)]
    outputs = [f"j{k}" if k <= factors else f"p{k}" for k in range(1, bits + 1)]
    tensors = []
    for k in range(1, factors + 1):
        legs = [*outputs[: k - 1], f"j{k}", f"i{k}", *inputs[k:]]
        tensors.append((f"f{k}", [(leg, 2) for leg in legs]))
    return Network(
        tensors, inputs, outputs, in_features=features, out_features=features, allow_padding=True
    )


def block_diagonal(in_dims: Dims, out_dims: Dims, blocks: int) -> Network:
    r"""A block-diagonal weight: ``blocks`` independent ``J × I`` blocks.

    One tensor ``B`` with legs ``(p, j, i)``; the block leg ``p`` (size ``blocks``) is a
    *pass-through* leg, the first input and the first output leg, so that

    $$W_{(p, j), (p', i)} = \delta_{p p'} \, B[p, j, i].$$

    A layer runs it as one batched matrix product over the blocks, never forming the zeros.
    ``blocks · I · J`` parameters: ``1/blocks`` of the dense layer's.

    Parameters
    ----------
    in_dims, out_dims
        ``in_features`` and ``out_features`` (each a multiple of ``blocks``), or the block sizes
        ``I`` and ``J`` given as one-element sequences.
    blocks
        Number of blocks.

    Examples
    --------
    >>> net = block_diagonal(768, 768, 4)
    >>> net.in_dims, net.num_params  # 4 blocks of 192 × 192
    ((4, 192), 147456)
    """
    check_count("blocks", blocks)
    sizes = []
    for name, dims in (("in_dims", in_dims), ("out_dims", out_dims)):
        check_dims(name, dims)
        if isinstance(dims, int):
            if dims % blocks:
                raise NetworkSpecError(
                    f"{name}={dims} does not split into {blocks} equal blocks "
                    f"({dims} = {dims // blocks}·{blocks} + {dims % blocks})"
                )
            sizes.append(dims // blocks)
        elif len(dims) != 1:
            raise NetworkSpecError(
                f"{name} must be a feature size or the block size as one leg, got {tuple(dims)}"
            )
        else:
            sizes.append(dims[0])
    size_in, size_out = sizes
    return Network(
        {"B": {"p": blocks, "j": size_out, "i": size_in}}, inputs=["p", "i"], outputs=["p", "j"]
    )

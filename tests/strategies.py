"""Hypothesis strategies for networks: random custom graphs and every builder."""

from hypothesis import strategies as st

import tnlayers
from tnlayers.testing import random_network

custom_networks = st.integers(0, 2**31 - 1).map(random_network)

mpo_networks = st.integers(1, 4).flatmap(
    lambda n: (
        st.builds(
            tnlayers.mpo,
            st.lists(st.integers(1, 4), min_size=n, max_size=n),
            st.lists(st.integers(1, 4), min_size=n, max_size=n),
            st.lists(st.integers(1, 3), min_size=n - 1, max_size=n - 1),
        )
        if n > 1
        else st.builds(tnlayers.mpo, st.just([3]), st.just([4]), st.just([]))
    )
)

kronecker_networks = st.integers(2, 3).flatmap(
    lambda m: st.builds(
        tnlayers.kronecker,
        st.lists(st.integers(1, 4), min_size=m, max_size=m),
        st.lists(st.integers(1, 4), min_size=m, max_size=m),
        st.integers(1, 3),
    )
)

low_rank_networks = st.builds(
    tnlayers.low_rank, st.integers(1, 12), st.integers(1, 12), st.integers(1, 4)
)

padded_networks = st.builds(
    lambda i, o, d: tnlayers.mpo(i, o, d, cores=2),
    st.integers(2, 40),
    st.integers(2, 40),
    st.integers(1, 3),
)

_small = st.lists(st.integers(1, 3), min_size=2, max_size=3)


def _leg_pairs(cores: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[list[int], list[int]]]:
    """(input leg sizes, output leg sizes), as many of each as ``cores`` draws, sizes 1–3."""
    return cores.flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(1, 3), min_size=n, max_size=n),
            st.lists(st.integers(1, 3), min_size=n, max_size=n),
        )
    )


_pair = _leg_pairs(st.integers(2, 3))

# Rings, binary trees and Tucker stars of 3–5 legs a side: the graphs the planner's grouped
# paths (runs of a ring, the two sides of a tree's edge) are offered for.
_wide = _leg_pairs(st.integers(3, 5))
ring_networks = st.builds(lambda d, b: tnlayers.tensor_ring(*d, b), _wide, st.integers(1, 3))
tree_networks = st.one_of(
    st.builds(lambda d, b: tnlayers.tree(*d, b), _wide, st.integers(1, 3)),
    st.builds(lambda d, r: tnlayers.tucker(*d, r), _wide, st.integers(1, 3)),
)

# Every other builder of the zoo, small: ring, CP, Tucker, tree, BTT, grid, butterfly, blocks.
zoo_networks = st.one_of(
    st.builds(lambda d, b: tnlayers.tensor_ring(*d, b), _pair, st.integers(1, 2)),
    st.builds(tnlayers.cp, _small, _small, st.integers(1, 3)),
    st.builds(tnlayers.tucker, _small, _small, st.integers(1, 2)),
    st.builds(lambda d, b: tnlayers.tree(*d, b), _pair, st.integers(1, 2)),
    st.builds(
        tnlayers.btt,
        st.lists(st.integers(1, 3), min_size=2, max_size=2),
        st.lists(st.integers(1, 3), min_size=2, max_size=2),
        st.integers(1, 2),
    ),
    st.builds(lambda d, b: tnlayers.grid(*d, b), _pair, st.integers(1, 2)),
    st.builds(
        lambda n, m: tnlayers.butterfly(n, factors=min(m, max(1, (n - 1).bit_length()))),
        st.integers(2, 16),
        st.integers(1, 4),
    ),
    st.builds(
        lambda b, i, o: tnlayers.block_diagonal(b * i, b * o, b),
        st.integers(1, 4),
        st.integers(1, 4),
        st.integers(1, 4),
    ),
)

any_network = st.one_of(
    custom_networks,
    mpo_networks,
    kronecker_networks,
    low_rank_networks,
    padded_networks,
    zoo_networks,
)


# Kronecker sums: (input factor sizes, output factor sizes, terms, seed), 2 to 4 bodies.
kron_shapes = st.integers(2, 4).flatmap(
    lambda m: st.tuples(
        st.lists(st.integers(1, 4), min_size=m, max_size=m),
        st.lists(st.integers(1, 4), min_size=m, max_size=m),
        st.integers(1, 3),
        st.integers(0, 10_000),
    )
)

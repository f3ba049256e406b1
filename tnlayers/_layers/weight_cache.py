"""Execute: the inference cache of a layer's materialized weight, which can never be stale.

A layer that materializes its weight ``W`` (out × in) in inference would rebuild it on every
call. Caching it is only safe if the cache notices *every* change of the tensors ``W`` is built
from, and PyTorch offers many ways to change a parameter that leave no trace a cheap key can see:
fused optimiser kernels and edits through ``p.data`` do not bump ``p._version``; ``copy_`` into
the same storage keeps ``data_ptr``; ``set_``, ``load_state_dict(assign=True)``, ``.to()``,
parametrisations and ``torch.func.functional_call`` swap the tensor itself.

So the cache keeps a copy of its *sources* (the network tensors, or the angles of a circuit) and
serves ``W`` only while they are bit-identical to that copy: one ``torch.equal`` per source.
Network layers have few parameters by design (that is their point), so the check costs far less
than the GEMM it saves. Nothing the user does can make this cache stale.

Where even that check is unwanted (on a GPU it waits for the device), [`cached`][tnlayers.cached]
opens an explicit scope, as ``torch.nn.utils.parametrize.cached()`` does: inside it every layer
builds ``W`` once and reuses it unchecked until the scope closes, and changing parameters inside
the scope is the caller's responsibility.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

__all__ = ["WeightCache", "cached"]


class _Scope(threading.local):
    """The open `cached` scopes of this thread and the caches filled inside them."""

    def __init__(self) -> None:
        self.depth = 0
        self.filled: weakref.WeakSet[WeightCache] = weakref.WeakSet()


_SCOPE = _Scope()


@contextmanager
def cached() -> Iterator[None]:
    """Reuse every layer's materialized weight, unchecked, until the block ends.

    Inside the block each tensor-network layer builds its dense weight at most once (per dtype
    and device) and reuses it for every later call, whatever the grad mode, without comparing
    its parameters — so it adds no work at all to a call, and on a GPU no host synchronisation.
    On leaving the outermost block every weight cached inside it is dropped. Scopes nest.

    Outside such a block layers still cache their weight in inference, but check on each call
    that their parameters are unchanged (see the Concepts page, "Caching").

    Warnings
    --------
    Do not change parameters inside the block (no optimiser step, no ``load_state_dict``): like
    ``torch.nn.utils.parametrize.cached()``, this is a promise the caller makes. Leave the block
    first, then change them.

    Examples
    --------
    >>> import torch, tnlayers
    >>> layer = tnlayers.MPOLinear(64, 64, bond=4, strategy="materialize").eval()
    >>> with torch.no_grad(), tnlayers.cached():
    ...     outputs = [layer(torch.randn(8, 64)) for _ in range(3)]  # W built once
    """
    _SCOPE.depth += 1
    try:
        yield
    finally:
        _SCOPE.depth -= 1
        if _SCOPE.depth == 0:
            for cache in list(_SCOPE.filled):
                cache._scoped = None
            _SCOPE.filled = weakref.WeakSet()


class WeightCache:
    """One layer's cached weight, checked against a copy of the tensors it was built from.

    Not copied or pickled with its layer: a copy starts empty (the weight is dense, so saving it
    would undo the compression).
    """

    __slots__ = ("__weakref__", "_checked", "_scoped")

    def __init__(self) -> None:
        self._checked: tuple[tuple[torch.Tensor, ...], torch.Tensor] | None = None
        # (the source tensors themselves, their dtype, built with autograd history, weight)
        self._scoped: tuple[tuple[torch.Tensor, ...], torch.dtype, bool, torch.Tensor] | None = None

    def lookup(self, sources: Sequence[torch.Tensor], needs_grad: bool) -> torch.Tensor | None:
        """The cached weight if it may serve a call on ``sources``, else ``None``.

        ``needs_grad``: the call must propagate gradients to the sources. Outside a
        [`cached`][tnlayers.cached] block such calls are never served.
        """
        if _SCOPE.depth and self._scoped is not None:
            held, dtype, has_graph, weight = self._scoped
            # The same tensor objects (not values: no comparison, no device sync). Swapped-in
            # tensors (functional_call, assign=True) or computed ones are not served.
            same = len(held) == len(sources) and all(
                a is b for a, b in zip(held, sources, strict=True)
            )
            if same and sources[0].dtype == dtype and (has_graph or not needs_grad):
                return weight
        if needs_grad or self._checked is None:
            return None
        snapshot, weight = self._checked
        if weight.is_inference() and not torch.is_inference_mode_enabled():
            # Built under torch.inference_mode(): autograd may not save it (an input may still
            # need a gradient), so rebuild outside that mode.
            return None
        if len(snapshot) != len(sources):
            return None
        # torch.equal compares shapes and values (bit-exact up to ±0) but promotes dtypes, and
        # needs both tensors on one device: check those first. Batch-1 inference pays this loop
        # on every call, hence the cheap comparisons (dtypes are singletons).
        device = weight.device
        for old, new in zip(snapshot, sources):  # noqa: B905 (lengths checked above)
            if new.dtype is not old.dtype or new.device != device or not torch.equal(old, new):
                return None
        return weight

    def store(
        self, sources: Sequence[torch.Tensor], weight: torch.Tensor, needs_grad: bool
    ) -> None:
        """Remember ``weight`` as built from ``sources`` (their values are copied).

        Inside a [`cached`][tnlayers.cached] block a weight built with autograd history keeps
        it, so that every use inside the block back-propagates into the sources, as with
        ``torch.nn.utils.parametrize.cached()``.
        """
        if _SCOPE.depth:
            self._scoped = (tuple(sources), sources[0].dtype, needs_grad, weight)
            _SCOPE.filled.add(self)
        if needs_grad:
            # Training: drop the inference copy rather than hold a dense weight all epoch.
            self._checked = None
            return
        with torch.no_grad():
            snapshot = tuple(s.detach().clone() for s in sources)
        self._checked = (snapshot, weight.detach())

    def get(
        self,
        sources: Sequence[torch.Tensor],
        needs_grad: bool,
        build: Callable[[], torch.Tensor],
    ) -> torch.Tensor:
        """The cached weight if it may serve this call, else ``build()``, stored for the next."""
        weight = self.lookup(sources, needs_grad)
        if weight is None:
            weight = build()
            self.store(sources, weight, needs_grad)
        return weight

    def clear(self) -> None:
        """Forget the cached weight (frees its memory)."""
        self._checked = None
        self._scoped = None

    def __bool__(self) -> bool:
        return self._checked is not None or self._scoped is not None

    def __deepcopy__(self, memo: dict[int, object]) -> WeightCache:
        return WeightCache()

    def __copy__(self) -> WeightCache:
        return WeightCache()

    def __reduce__(self) -> tuple[type[WeightCache], tuple[()]]:
        return (WeightCache, ())

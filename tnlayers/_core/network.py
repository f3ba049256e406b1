"""Declare: the immutable tensor-network graph that describes a weight matrix.

A [`Network`][tnlayers.Network] is a set of named tensors. Each tensor has named legs, and a leg's
name *is* its index: legs that share a name are joined. An index carried by two tensors is a bond,
by three or more a hyperedge, and by exactly one an open leg. Open legs are split into input legs
and output legs, each in a stated order; that order is the row-major contract with flat feature
vectors. The network knows nothing about torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import NetworkSpecError

if TYPE_CHECKING:  # imported where used: networkx is slow to import
    import networkx as nx

__all__ = ["Network"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_JSON_FORMAT = "tnlayers.network"
_JSON_VERSION = 1

LegSpec = Mapping[str, int] | Sequence[tuple[str, int]]
TensorsSpec = Mapping[str, LegSpec] | Iterable[tuple[str, LegSpec]]


# Layers keep one parameter per tensor in a torch.nn.ParameterDict, keyed by tensor name, and a
# ParameterDict's keys are attributes: a tensor named like one of its methods ("forward",
# "training", "values"...) could not be stored. Listed here so that the declaration, which knows
# nothing of torch, refuses them; tests/test_validation.py keeps the list in step with torch.
RESERVED_TENSOR_NAMES = frozenset(
    (
        "T_destination",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "clear",
        "compile",
        "copy",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "fromkeys",
        "get",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "items",
        "keys",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "pop",
        "popitem",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "setdefault",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "training",
        "type",
        "update",
        "values",
        "xpu",
        "zero_grad",
    )
)


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise NetworkSpecError(
            f"{kind} name {name!r} is not valid: names must be Python identifiers "
            "(letters, digits and underscores, not starting with a digit)"
        )
    if kind == "tensor" and (name.startswith("_") or name in RESERVED_TENSOR_NAMES):
        raise NetworkSpecError(
            f"tensor name {name!r} is reserved: layers store each tensor as an attribute of a "
            "torch.nn.ParameterDict, so tensor names may not start with '_' or be one of its "
            f"attribute names ({', '.join(sorted(RESERVED_TENSOR_NAMES)[:6])}, ...); "
            "rename the tensor"
        )
    return name


def _fmt_legs(legs: Iterable[str], sizes: Mapping[str, int]) -> str:
    return " × ".join(f"{leg} ({sizes[leg]})" for leg in legs)


class Network:
    """An immutable tensor network whose open legs form a linear map ``in_features → out_features``.

    Parameters
    ----------
    tensors
        The tensors, in order: a mapping (or a sequence of pairs) from tensor name to its legs. The
        legs of one tensor are a mapping (or a sequence of pairs) from leg name to size, in the
        order of the tensor's axes. Legs with the same name on different tensors are joined.
    inputs
        Names of the input legs, most significant first: a flat input vector of length
        ``in_features`` is reshaped row-major to ``[size(inputs[0]), size(inputs[1]), ...]``.
    outputs
        Names of the output legs, most significant first, flattened row-major into the output.
    in_features, out_features
        The feature sizes the layer exposes. By default the product of the input (output) leg
        sizes. A smaller value is allowed only with ``allow_padding=True``: inputs are then
        zero-padded up to the product and outputs are truncated to ``out_features``.
    allow_padding
        Permit ``in_features``/``out_features`` smaller than the leg products (used by automatic
        factorisation of sizes such as primes).

    Raises
    ------
    NetworkSpecError
        If the declaration is empty, has invalid or duplicate names, an index whose size differs
        between tensors, an open leg assigned to neither side, leg products that do not match the
        feature sizes, or if the tensors do not form one connected network.

    Notes
    -----
    Two kinds of open index go beyond a plain tensor diagram, and both are allowed:

    * **shared open legs**: an input (or output) leg carried by several tensors, as in Monarch and
      Block Tensor-Train, ``W[(c,d),(a,b)] = R[a,c,b] · L[c,d,a]``;
    * **pass-through legs**: a leg listed among the inputs *and* the outputs. The weight is then
      block-diagonal in it, ``W[(p,j),(p',i)] = δ_{pp'} T[p,j,i]``: output block ``p`` reads only
      input block ``p``. Layers run such a leg as the batch dimension of a batched matmul; the
      δ is formed only when the full matrix is asked for (a layer's ``to_dense()``,
      [`contract_weight`][tnlayers.contraction.contract_weight]).
      [`passthrough`][tnlayers.Network.passthrough] lists them.

    Examples
    --------
    A two-core matrix product operator mapping 6 → 6 features through a bond of size 2:

    >>> net = Network(
    ...     {"A": {"j1": 2, "i1": 2, "b": 2}, "B": {"b": 2, "j2": 3, "i2": 3}},
    ...     inputs=["i1", "i2"],
    ...     outputs=["j1", "j2"],
    ... )
    >>> net.in_features, net.out_features, net.num_params
    (6, 6, 26)

    Three independent 4 × 4 blocks: the block index ``p`` passes through.

    >>> blocks = Network({"B": {"p": 3, "j": 4, "i": 4}}, inputs=["p", "i"], outputs=["p", "j"])
    >>> blocks.in_features, blocks.passthrough, blocks.num_params
    (12, ('p',), 48)
    """

    __slots__ = (
        "_in_dims",
        "_in_features",
        "_inputs",
        "_out_dims",
        "_out_features",
        "_outputs",
        "_passthrough",
        "_signature",
        "_sizes",
        "_tensors",
    )

    def __init__(
        self,
        tensors: TensorsSpec,
        inputs: Sequence[str],
        outputs: Sequence[str],
        *,
        in_features: int | None = None,
        out_features: int | None = None,
        allow_padding: bool = False,
    ) -> None:
        items = list(tensors.items()) if isinstance(tensors, Mapping) else list(tensors)
        if not items:
            raise NetworkSpecError(
                "the network is empty: give at least one tensor, e.g. {'W': {'j': 4, 'i': 3}}"
            )
        parsed: list[tuple[str, tuple[str, ...]]] = []
        sizes: dict[str, int] = {}
        owner: dict[str, str] = {}
        for entry in items:
            if not (isinstance(entry, tuple | list) and len(entry) == 2):
                raise NetworkSpecError(f"expected (tensor name, legs) pairs, got {entry!r}")
            name, legs_spec = entry
            _check_name("tensor", name)
            if any(name == seen for seen, _ in parsed):
                raise NetworkSpecError(f"tensor name {name!r} is used twice; names must be unique")
            leg_items = (
                list(legs_spec.items()) if isinstance(legs_spec, Mapping) else list(legs_spec)
            )
            if not leg_items:
                raise NetworkSpecError(f"tensor {name!r} has no legs; give it at least one")
            legs: list[str] = []
            for leg_entry in leg_items:
                if not (isinstance(leg_entry, tuple | list) and len(leg_entry) == 2):
                    raise NetworkSpecError(
                        f"legs of tensor {name!r} must be (leg name, size) pairs, got {leg_entry!r}"
                    )
                leg, size = leg_entry
                _check_name("leg", leg)
                if leg in legs:
                    raise NetworkSpecError(
                        f"tensor {name!r} lists leg {leg!r} twice "
                        f"(legs: {', '.join([*legs, leg])}); "
                        "a tensor carries each index at most once"
                    )
                if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                    raise NetworkSpecError(
                        f"leg {leg!r} of tensor {name!r} has size {size!r}; "
                        "sizes must be positive integers"
                    )
                if leg in sizes and sizes[leg] != size:
                    raise NetworkSpecError(
                        f"index {leg!r} has size {sizes[leg]} on tensor {owner[leg]!r} but {size} "
                        f"on tensor {name!r}; every leg joined by an index must have the same size"
                    )
                sizes.setdefault(leg, size)
                owner.setdefault(leg, name)
                legs.append(leg)
            parsed.append((name, tuple(legs)))

        self._tensors: tuple[tuple[str, tuple[str, ...]], ...] = tuple(parsed)
        self._sizes: Mapping[str, int] = MappingProxyType(dict(sizes))
        self._inputs = self._check_side("input", inputs)
        self._outputs = self._check_side("output", outputs)
        counts = self._index_counts()
        sides = set(self._inputs) | set(self._outputs)
        for name, tensor_legs in self._tensors:
            for leg in tensor_legs:
                if counts[leg] == 1 and leg not in sides:
                    raise NetworkSpecError(
                        f"open leg {leg!r} of tensor {name!r} (size {sizes[leg]}) is assigned to "
                        "neither side; list it in inputs or outputs, or join it to another tensor"
                    )
        # Derived once: layers read these on every forward call.
        self._in_dims = tuple(sizes[leg] for leg in self._inputs)
        output_legs = set(self._outputs)
        self._passthrough = tuple(leg for leg in self._inputs if leg in output_legs)
        self._out_dims = tuple(sizes[leg] for leg in self._outputs)
        self._in_features = self._check_features("input", self._inputs, in_features, allow_padding)
        self._out_features = self._check_features(
            "output", self._outputs, out_features, allow_padding
        )
        self._check_connected()
        self._signature = hashlib.sha256(
            json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()[:16]

    # ------------------------------------------------------------------ validation helpers
    def _check_side(self, side: str, legs: Sequence[str]) -> tuple[str, ...]:
        if isinstance(legs, str):
            raise NetworkSpecError(
                f"{side} legs must be a sequence of leg names, got the string {legs!r}; "
                f"write [{', '.join(repr(c) for c in legs)}] if you meant one leg per character"
            )
        out: list[str] = []
        for leg in legs:
            if leg not in self._sizes:
                known = ", ".join(self._sizes)
                raise NetworkSpecError(
                    f"{side} leg {leg!r} is not a leg of any tensor (legs: {known})"
                )
            if leg in out:
                raise NetworkSpecError(f"{side} leg {leg!r} is listed twice")
            out.append(leg)
        if not out:
            raise NetworkSpecError(
                f"the network has no {side} legs; a layer needs at least one on each side"
            )
        return tuple(out)

    def _check_features(
        self, side: str, legs: tuple[str, ...], features: int | None, allow_padding: bool
    ) -> int:
        product = math.prod(self._sizes[leg] for leg in legs)
        if features is None:
            return product
        if isinstance(features, bool) or not isinstance(features, int) or features < 1:
            raise NetworkSpecError(f"{side}_features must be a positive integer, got {features!r}")
        if features == product:
            return features
        described = _fmt_legs(legs, self._sizes)
        if features > product or not allow_padding:
            hint = "" if features > product else "; pass allow_padding=True to zero-pad"
            raise NetworkSpecError(
                f"{side} legs {described} multiply to {product}, but "
                f"{side[:-3] if side == 'output' else 'in'}_features={features}{hint}"
            )
        return features

    def _check_connected(self) -> None:
        import networkx as nx

        graph = self.graph
        if nx.is_connected(graph):
            return
        groups = [
            sorted(node[1] for node in comp if node[0] == "tensor")
            for comp in nx.connected_components(graph)
        ]
        described = " and ".join("{" + ", ".join(map(repr, g)) + "}" for g in groups)
        raise NetworkSpecError(
            f"the network is disconnected: tensors {described} share no index; join them with a "
            "bond (a sum of Kronecker products, for instance, shares its term index)"
        )

    def _index_counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(self._sizes, 0)
        for _, legs in self._tensors:
            for leg in legs:
                counts[leg] += 1
        return counts

    # ------------------------------------------------------------------ structure
    @property
    def tensor_names(self) -> tuple[str, ...]:
        """Names of the tensors, in declaration order."""
        return tuple(name for name, _ in self._tensors)

    def legs(self, tensor: str) -> tuple[str, ...]:
        """Leg names of ``tensor``, in the order of its axes."""
        for name, legs in self._tensors:
            if name == tensor:
                return legs
        raise NetworkSpecError(
            f"no tensor named {tensor!r}; tensors: {', '.join(self.tensor_names)}"
        )

    def shape(self, tensor: str) -> tuple[int, ...]:
        """Shape of ``tensor``: the sizes of its legs in axis order."""
        return tuple(self._sizes[leg] for leg in self.legs(tensor))

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every tensor, keyed by name, in declaration order."""
        return {name: tuple(self._sizes[leg] for leg in legs) for name, legs in self._tensors}

    @property
    def sizes(self) -> Mapping[str, int]:
        """Size of every index (read-only mapping)."""
        return self._sizes

    @property
    def inputs(self) -> tuple[str, ...]:
        """Input legs, most significant first."""
        return self._inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        """Output legs, most significant first."""
        return self._outputs

    @property
    def in_dims(self) -> tuple[int, ...]:
        """Sizes of the input legs."""
        return self._in_dims

    @property
    def out_dims(self) -> tuple[int, ...]:
        """Sizes of the output legs."""
        return self._out_dims

    @property
    def in_features(self) -> int:
        """Length of the flat input vector (may be below ``prod(in_dims)`` when padded)."""
        return self._in_features

    @property
    def out_features(self) -> int:
        """Length of the flat output vector (may be below ``prod(out_dims)`` when padded)."""
        return self._out_features

    @property
    def padded_in_features(self) -> int:
        """Product of the input leg sizes."""
        return math.prod(self.in_dims)

    @property
    def padded_out_features(self) -> int:
        """Product of the output leg sizes."""
        return math.prod(self.out_dims)

    @property
    def is_padded(self) -> bool:
        """Whether inputs are zero-padded or outputs truncated."""
        return (self.in_features, self.out_features) != (
            self.padded_in_features,
            self.padded_out_features,
        )

    @property
    def num_params(self) -> int:
        """Number of scalar parameters: the total size of all tensors (no bias)."""
        return sum(math.prod(shape) for shape in self.shapes.values())

    @property
    def dense_params(self) -> int:
        """Number of entries of the equivalent dense weight, ``in_features * out_features``."""
        return self.in_features * self.out_features

    @property
    def open_legs(self) -> tuple[str, ...]:
        """All open legs: inputs, then the outputs that are not also inputs."""
        return self._inputs + tuple(leg for leg in self._outputs if leg not in self._passthrough)

    def side(self, leg: str) -> str | None:
        """``"input"``, ``"output"``, ``"both"`` (a pass-through leg) or ``None`` (summed)."""
        if leg in self._inputs:
            return "both" if leg in self._outputs else "input"
        return "output" if leg in self._outputs else None

    @property
    def passthrough(self) -> tuple[str, ...]:
        """Legs listed on both sides (in input order): the weight is block-diagonal in each."""
        return self._passthrough

    @property
    def weight_legs(self) -> tuple[str, ...]:
        """Legs of the materialized weight: the outputs, then the inputs that do not pass through.

        Without pass-through legs this is ``outputs + inputs``, the ``(out, in)`` matrix as a
        tensor; a pass-through leg appears once, so the weight holds only its diagonal blocks.
        """
        return self._outputs + tuple(leg for leg in self._inputs if leg not in self._passthrough)

    @property
    def bonds(self) -> tuple[str, ...]:
        """Summed indices joining exactly two tensors."""
        counts = self._index_counts()
        sides = set(self.open_legs)
        return tuple(leg for leg, n in counts.items() if n == 2 and leg not in sides)

    @property
    def hyperedges(self) -> tuple[str, ...]:
        """Indices shared by three or more tensors (summed, or open if listed as a side)."""
        return tuple(leg for leg, n in self._index_counts().items() if n >= 3)

    @property
    def summed_indices(self) -> tuple[str, ...]:
        """Every index that is contracted away (not an open leg)."""
        sides = set(self.open_legs)
        return tuple(leg for leg in self._sizes if leg not in sides)

    @property
    def graph(self) -> nx.Graph:
        """Bipartite graph of tensors and indices.

        Nodes are ``("tensor", name)`` and ``("index", name)``; an edge joins a tensor to each of
        its legs, with attribute ``axis`` (the axis position). Index nodes carry ``size`` and
        ``side`` (``"input"``, ``"output"``, ``"both"`` for a pass-through leg, or ``None``). A
        fresh graph is built on every access.
        """
        import networkx as nx

        graph = nx.Graph()
        for leg, size in self._sizes.items():
            graph.add_node(("index", leg), kind="index", size=size, side=self.side(leg))
        for name, legs in self._tensors:
            graph.add_node(("tensor", name), kind="tensor", shape=self.shape(name))
            for axis, leg in enumerate(legs):
                graph.add_edge(("tensor", name), ("index", leg), axis=axis)
        return graph

    @property
    def signature(self) -> str:
        """Stable hash of the structure and sizes (16 hex digits); equal networks share it."""
        return self._signature

    # ------------------------------------------------------------------ copies and serialisation
    def replace(
        self,
        *,
        tensors: TensorsSpec | None = None,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        sizes: Mapping[str, int] | None = None,
        in_features: int | None = None,
        out_features: int | None = None,
        allow_padding: bool | None = None,
    ) -> Network:
        """Return a new network with some parts changed (the original is untouched).

        ``sizes`` re-sizes indices everywhere they occur, e.g. ``net.replace(sizes={"b1": 8})``
        grows a bond. Feature sizes are kept only when neither side's legs changed.
        """
        new_sizes = {**self._sizes, **(sizes or {})}
        if tensors is None:
            tensors = [
                (name, [(leg, new_sizes[leg]) for leg in legs]) for name, legs in self._tensors
            ]
        new_in = self._inputs if inputs is None else tuple(inputs)
        new_out = self._outputs if outputs is None else tuple(outputs)
        same_in = new_in == self._inputs and all(new_sizes[k] == self._sizes[k] for k in new_in)
        same_out = new_out == self._outputs and all(new_sizes[k] == self._sizes[k] for k in new_out)
        return Network(
            tensors,
            new_in,
            new_out,
            in_features=in_features
            if in_features is not None
            else (self._in_features if same_in else None),
            out_features=out_features
            if out_features is not None
            else (self._out_features if same_out else None),
            allow_padding=self.is_padded if allow_padding is None else allow_padding,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description that [`from_dict`][tnlayers.Network.from_dict] rebuilds."""
        return {
            "format": _JSON_FORMAT,
            "version": _JSON_VERSION,
            "tensors": [
                {"name": name, "legs": [[leg, self._sizes[leg]] for leg in legs]}
                for name, legs in self._tensors
            ],
            "inputs": list(self._inputs),
            "outputs": list(self._outputs),
            "in_features": self._in_features,
            "out_features": self._out_features,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Network:
        """Rebuild a network from [`to_dict`][tnlayers.Network.to_dict]'s output.

        The description is checked field by field before anything is built: a missing, extra
        or mistyped field, a negative or absurd size (legs above 2³¹ − 1, tensors above 2⁴⁰
        entries) or an over-long name raises [`NetworkSpecError`][tnlayers.NetworkSpecError]
        naming the field's path (``tensors[1].legs[0][1]``). Nothing in it is executed.
        """
        return cls(**_parse_description(data), allow_padding=True)

    def to_json(self, **kwargs: Any) -> str:
        """Serialise to a JSON string (keyword arguments go to `json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> Network:
        """Rebuild a network from [`to_json`][tnlayers.Network.to_json]'s output (checked as
        [`from_dict`][tnlayers.Network.from_dict] checks its input)."""
        if not isinstance(text, str | bytes | bytearray):
            raise NetworkSpecError(f"from_json needs a JSON string, got {type(text).__name__}")
        if len(text) > _MAX_JSON_CHARS:
            raise NetworkSpecError(
                f"the JSON text has {len(text):,} characters; a network description has at "
                f"most {_MAX_JSON_CHARS:,}"
            )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise NetworkSpecError(f"not valid JSON: {err}") from None
        except RecursionError:
            raise NetworkSpecError("not a network description: JSON nested too deeply") from None
        return cls.from_dict(data)

    @classmethod
    def from_einsum(
        cls,
        spec: str,
        sizes: Mapping[str, int],
        *,
        names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Network:
        """Build a network from an einsum-like string.

        The string lists the tensors' legs, comma separated, then a colon, then the input legs,
        ``->`` and the output legs: ``"ia,ajb,bk : ik -> j"``. A term without spaces has one leg
        per character; if any term has spaces, every term lists space-separated leg names, so
        multi-character names work too: ``"i1 a, a j1 b, b i2 : i1 i2 -> j1"``.

        Parameters
        ----------
        spec
            The network string described above.
        sizes
            Size of every leg name used in ``spec``.
        names
            Tensor names, one per term; default ``T0, T1, ...``.
        **kwargs
            Passed on to [`Network`][tnlayers.Network] (``in_features``, ``allow_padding``, ...).

        Examples
        --------
        >>> sizes = {"i": 2, "k": 3, "j": 4, "a": 5, "b": 5}
        >>> Network.from_einsum("ia,ajb,bk : ik -> j", sizes).shapes
        {'T0': (2, 5), 'T1': (5, 4, 5), 'T2': (5, 3)}
        """
        if spec.count(":") != 1 or spec.count("->") != 1:
            raise NetworkSpecError(
                f"network string {spec!r} must look like 'tensors : inputs -> outputs', "
                "e.g. 'ia,ajb,bk : ik -> j'"
            )
        body, sides = spec.split(":")
        left, right = sides.split("->")

        raw_terms = [*body.split(","), left, right]
        # One leg per character, unless some term spells its legs out with spaces.
        spelled = any(" " in term.strip() for term in raw_terms)

        def split_legs(term: str) -> list[str]:
            return term.split() if spelled else list(term.strip())

        terms = [split_legs(term) for term in body.split(",")]
        if names is None:
            names = [f"T{n}" for n in range(len(terms))]
        if len(names) != len(terms):
            raise NetworkSpecError(f"{len(names)} names given for {len(terms)} tensors in {spec!r}")
        tensors = []
        for name, legs in zip(names, terms, strict=True):
            missing = [leg for leg in legs if leg not in sizes]
            if missing:
                raise NetworkSpecError(
                    f"no size given for leg {missing[0]!r} of tensor {name!r}; sizes: {dict(sizes)}"
                )
            tensors.append((name, [(leg, sizes[leg]) for leg in legs]))
        return cls(tensors, split_legs(left), split_legs(right), **kwargs)

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Network):
            return NotImplemented
        return self._signature == other._signature and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self._signature)

    def __setattr__(self, key: str, value: Any) -> None:
        if hasattr(self, "_signature"):
            raise AttributeError("Network is immutable; use .replace(...) to derive a new one")
        object.__setattr__(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Network.from_json, (self.to_json(),))

    def __repr__(self) -> str:
        body = ", ".join(
            f"{name}[{', '.join(f'{leg}={self._sizes[leg]}' for leg in legs)}]"
            for name, legs in self._tensors
        )
        pad = " padded" if self.is_padded else ""
        return (
            f"Network({body}; in={list(self._inputs)} -> out={list(self._outputs)}; "
            f"{self.in_features}→{self.out_features}{pad}, {self.num_params} params)"
        )


# Limits of a network description read from outside (JSON): generous for any real network,
# small enough that a hostile or corrupted file fails fast with a clear message.
_MAX_JSON_CHARS = 50_000_000
_MAX_NAME_CHARS = 256
_MAX_TENSORS = 100_000
_MAX_LEGS_PER_TENSOR = 64
_MAX_LEG_SIZE = 2**31 - 1
_MAX_TENSOR_ENTRIES = 2**40
_DESCRIPTION_KEYS = ("format", "version", "tensors", "inputs", "outputs")
_OPTIONAL_KEYS = ("in_features", "out_features")


def _describe_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _expect(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise NetworkSpecError(f"network description, field {path}: {message}")


def _parse_name(value: object, path: str) -> str:
    _expect(isinstance(value, str), path, f"expected a name, got {_describe_type(value)}")
    assert isinstance(value, str)
    _expect(
        len(value) <= _MAX_NAME_CHARS,
        path,
        f"a name of {len(value):,} characters (at most {_MAX_NAME_CHARS})",
    )
    return value


def _parse_count(value: object, path: str, largest: int) -> int:
    _expect(
        isinstance(value, int) and not isinstance(value, bool),
        path,
        f"expected a positive integer, got {_describe_type(value)} {value!r:.40}",
    )
    assert isinstance(value, int)
    _expect(1 <= value <= largest, path, f"expected 1 … {largest:,}, got {value:,}")
    return value


def _parse_list(value: object, path: str, longest: int) -> list[Any]:
    _expect(isinstance(value, list), path, f"expected a list, got {_describe_type(value)}")
    assert isinstance(value, list)
    _expect(len(value) <= longest, path, f"{len(value):,} entries (at most {longest:,})")
    return value


def _parse_description(data: object) -> dict[str, Any]:
    """Check a network description field by field; the arguments of ``Network(...)``."""
    _expect(isinstance(data, Mapping), "(top)", f"expected an object, got {_describe_type(data)}")
    assert isinstance(data, Mapping)
    _expect(
        data.get("format") == _JSON_FORMAT,
        "format",
        f"not a tnlayers network description: {data.get('format')!r:.60}, "
        f"expected {_JSON_FORMAT!r}",
    )
    missing = [key for key in _DESCRIPTION_KEYS if key not in data]
    _expect(not missing, "(top)", f"missing {', '.join(missing)}")
    extra = sorted(str(k) for k in data if k not in _DESCRIPTION_KEYS + _OPTIONAL_KEYS)
    _expect(not extra, "(top)", f"unknown field(s) {', '.join(extra)}")
    _expect(
        data["version"] == _JSON_VERSION and not isinstance(data["version"], bool),
        "version",
        f"unsupported version {data['version']!r:.20}; this tnlayers reads {_JSON_VERSION}",
    )
    tensors = []
    for t, entry in enumerate(_parse_list(data["tensors"], "tensors", _MAX_TENSORS)):
        path = f"tensors[{t}]"
        _expect(
            isinstance(entry, Mapping), path, f"expected an object, got {_describe_type(entry)}"
        )
        keys = sorted(str(k) for k in entry)
        _expect(keys == ["legs", "name"], path, f"expected fields legs, name; got {keys}")
        name = _parse_name(entry["name"], f"{path}.name")
        legs = []
        leg_list = _parse_list(entry["legs"], f"{path}.legs", _MAX_LEGS_PER_TENSOR)
        entries = 1
        for k, leg in enumerate(leg_list):
            leg_path = f"{path}.legs[{k}]"
            _expect(
                isinstance(leg, list) and len(leg) == 2,
                leg_path,
                "expected [leg name, size]",
            )
            leg_name = _parse_name(leg[0], f"{leg_path}[0]")
            size = _parse_count(leg[1], f"{leg_path}[1]", _MAX_LEG_SIZE)
            entries *= size
            legs.append((leg_name, size))
        _expect(
            entries <= _MAX_TENSOR_ENTRIES,
            f"{path}.legs",
            f"the tensor would have {entries:.3g} entries (at most 2⁴⁰)",
        )
        tensors.append((name, legs))
    sides = {}
    for side in ("inputs", "outputs"):
        items = _parse_list(data[side], side, _MAX_TENSORS * _MAX_LEGS_PER_TENSOR)
        sides[side] = [_parse_name(leg, f"{side}[{k}]") for k, leg in enumerate(items)]
    features = {
        key: None if data.get(key) is None else _parse_count(data[key], key, 2**62)
        for key in _OPTIONAL_KEYS
    }
    return {"tensors": tensors, **sides, **features}

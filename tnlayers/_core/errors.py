"""The library's exceptions.

Every problem with user input raises a subclass of [`TNLayersError`][tnlayers.TNLayersError]. Each
subclass is also the matching builtin (`ValueError` or `TypeError`), so code that already catches
those keeps working.
"""

from __future__ import annotations

__all__ = ["ArgumentTypeError", "NetworkSpecError", "OptionError", "ShapeError", "TNLayersError"]


class TNLayersError(Exception):
    """Base class of every error tnlayers raises on purpose."""


class NetworkSpecError(TNLayersError, ValueError):
    """A network declaration is invalid: bad names, sizes, sides or connectivity."""


class ShapeError(TNLayersError, ValueError):
    """A tensor given at run time has the wrong shape, dtype or size for the network."""


class OptionError(TNLayersError, ValueError):
    """An option has a value outside its allowed set."""


class ArgumentTypeError(TNLayersError, TypeError):
    """An argument has the wrong type (for example a layer given something that is no Network)."""

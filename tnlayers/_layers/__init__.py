"""Execute: compiled contraction programs, the strategy owner, the weight cache, and the layers
whose weight is a contracted network (``TNLinearBase`` and its families)."""

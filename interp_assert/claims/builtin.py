"""Importing this module registers the built-in claim kinds."""

from . import attention, cluster, compare, monotone, ranking  # noqa: F401
from . import distribution, trajectory  # noqa: F401  (distribution and trajectory claims)
from . import baseline  # noqa: F401  (x within tolerance of baseline)
from . import circuit, causal  # noqa: F401  (circuit and causal claims)

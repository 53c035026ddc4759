"""recbole-mamba: RecMamba, a Mamba sequential recommender for lifelong histories, as a RecBole plugin.

Importing the package does nothing else: the RecBole compatibility fixes (:mod:`recbole_mamba.compat`) are applied
by the entry points that use RecBole (``recbole_mamba.quick_start``, ``recbole_mamba.data``, ``recbole_mamba.model``'s
recommenders, the command line), so ``recbole_mamba.ops`` and the Mamba block import neither RecBole nor pandas.
"""

__version__ = "0.1.0"

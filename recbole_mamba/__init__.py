"""recbole-mamba: RecMamba, a Mamba sequential recommender for lifelong histories, as a RecBole plugin."""

from recbole_mamba import compat

compat.apply()

__version__ = "0.1.0"

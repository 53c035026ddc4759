"""recbole-mamba's models: every recommender class exported here is found by name (``--model=RecMamba``)."""

from recbole_mamba.model.gru4rec_all_positions import GRU4RecAllPositions
from recbole_mamba.model.mamba_mixer import MambaMixer
from recbole_mamba.model.recmamba import RecMamba
from recbole_mamba.model.sasrec_sdpa import SASRecSDPA

__all__ = ["GRU4RecAllPositions", "MambaMixer", "RecMamba", "SASRecSDPA"]

"""``python -m recbole_mamba.recommend``: top-k recommendations from a checkpoint (see
:mod:`recbole_mamba.quick_start.recommend`)."""

import sys

from recbole_mamba.quick_start.recommend import main

if __name__ == "__main__":
    sys.exit(main())

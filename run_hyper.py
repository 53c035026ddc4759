"""Hyper-parameter search for a recbole-mamba or RecBole model: ``python run_hyper.py --model=RecMamba --tool=ray``.

The same command line as the console script ``recbole-mamba-hyper`` (see
``recbole_mamba/quick_start/tuning/cli.py`` or ``--help``).
"""

import sys

from recbole_mamba.quick_start.tuning.cli import main

if __name__ == "__main__":
    sys.exit(main())

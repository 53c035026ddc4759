"""Train and evaluate a recbole-mamba or RecBole model: ``python run.py --model=RecMamba --dataset=kuairand``.

The same command line as ``python -m recbole_mamba`` (see ``recbole_mamba/quick_start/cli.py`` or ``--help``).
"""

import sys

from recbole_mamba.quick_start.cli import main

if __name__ == "__main__":
    sys.exit(main())

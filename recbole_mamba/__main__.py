"""``python -m recbole_mamba --model=... --dataset=... [--key=value ...]``: the command line of ``run.py``."""

import sys

from recbole_mamba.quick_start.cli import main

sys.exit(main())

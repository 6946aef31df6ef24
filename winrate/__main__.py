"""`python -m winrate [overrides]`: see winrate/evaluate.py."""

import sys

from winrate.evaluate import main

sys.exit(main())

"""`python -m experiments.signals` (`make signals`): see experiments/signals/experiment.py."""

import sys

from experiments.signals.experiment import main

sys.exit(main())

"""`python -m experiments.signals` (`make signals`): see experiments/signals/experiment.py."""

import sys

from experiments.signals.experiment import main

if __name__ == "__main__":  # not in the worker processes, which import this module too
    sys.exit(main())

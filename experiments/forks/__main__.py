"""`python -m experiments.forks` (`make forks`): see experiments/forks/experiment.py."""

import sys

from experiments.forks.experiment import main

if __name__ == "__main__":  # not in the worker processes, which import this module too
    sys.exit(main())

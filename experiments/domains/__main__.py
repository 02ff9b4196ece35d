"""`python -m experiments.domains` (`make domains`): see experiments/domains/experiment.py."""

import sys

from experiments.domains.experiment import main

if __name__ == "__main__":  # not in the worker processes, which import this module too
    sys.exit(main())

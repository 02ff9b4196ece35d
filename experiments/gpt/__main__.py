"""`python -m experiments.gpt` (`make gpt`): see experiments/gpt/experiment.py."""

import sys

from experiments.gpt.experiment import main

if __name__ == "__main__":  # not in the worker processes, which import this module too
    sys.exit(main())

"""`python -m experiments.smol` (`make smol`): see experiments/smol/experiment.py."""

import sys

from experiments.smol.experiment import main

if __name__ == "__main__":
    sys.exit(main())

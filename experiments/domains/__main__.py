"""`python -m experiments.domains` (`make domains`): see experiments/domains/experiment.py."""

import sys

from experiments.domains.experiment import main

sys.exit(main())

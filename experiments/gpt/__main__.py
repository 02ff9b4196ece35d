"""`python -m experiments.gpt` (`make gpt`): see experiments/gpt/experiment.py."""

import sys

from experiments.gpt.experiment import main

sys.exit(main())

"""Hypothesis profiles: `dev` (default, quick), `ci` (derandomized, more examples) and `stress`
(for hunting counterexamples by hand); no deadlines since CPU timings vary.
Select with HYPOTHESIS_PROFILE=ci."""

import os

from hypothesis import settings

settings.register_profile("dev", max_examples=15, deadline=None)
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("stress", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

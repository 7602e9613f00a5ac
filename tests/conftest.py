"""Shared test configuration: a derandomised hypothesis profile so property tests never flake."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("NCBOUNDS_HYPOTHESIS_PROFILE", "ci"))

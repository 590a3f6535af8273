# The home page shows campaigns: the campaigns tests' ready campaign (a verified sender, three customers).
from tests.campaigns.conftest import customers, ready_campaign, verified_domain  # noqa: F401

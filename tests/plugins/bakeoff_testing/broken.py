"""A plugin whose SDK is missing: importing this module fails."""

import bakeoff_vendor_sdk_that_does_not_exist  # noqa: F401


class BrokenBackend:
    name = "broken"


BrokenWorkload = None

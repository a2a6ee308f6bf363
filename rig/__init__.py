"""The simulated field: an outstation per configured device, driven from Python or scenarios."""

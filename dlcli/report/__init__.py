"""Reports of a run: console output and figures."""

"""Performance benchmarks of the DALY active balancer integration (run with ``scripts/bench``).

Nothing here is part of the integration or of the test suite: ``scripts/test`` never collects
this folder, and the targets below are reported, never asserted.
"""

"""Tests of aiodalybalancer (no Home Assistant needed)."""

"""Tests of the protocol layer (no Home Assistant needed)."""

"""Tests of the Home Assistant integration (real HA test harness)."""

"""Tests for the DALY active balancer integration."""

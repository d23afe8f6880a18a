"""The DALY Smart Active Balance Module integration."""

from __future__ import annotations

"""Long-running reliability tools (fuzz, soak); not part of the integration."""

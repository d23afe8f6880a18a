"""Browser end-to-end tests: a real Home Assistant, the device simulator and Chromium."""

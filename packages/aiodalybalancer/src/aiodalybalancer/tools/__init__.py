"""Tools and test doubles for the DALY integration; never shipped to Home Assistant.

The simulated module (D2 and A5 device side, factory register values), the stand-in Bluetooth
client and the command-line tool. The tests, ``scripts/run``, the benchmarks and the soak use
them; HACS installs only ``custom_components/daly_active_balance``, which imports nothing from
here (a test checks it). They reach the protocol layer by its package path, so they run where
the integration's tests run.
"""

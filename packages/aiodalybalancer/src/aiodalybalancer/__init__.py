"""DALY Smart Active Balance Module protocol layer.

Nothing in this package imports Home Assistant: frames, CRC, the register table, the stream
re-assembler, transports and the client run on their own (a test proves it). The simulator and
the command-line tool that use it live outside the shipped package, in ``daly_tools``.
"""

"""DALY Smart Active Balance Module protocol layer.

Nothing in this package imports Home Assistant: frames, CRC, the register table, the stream
re-assembler, transports, the client, the simulator and the command-line tool all run on their
own (a test proves it).
"""

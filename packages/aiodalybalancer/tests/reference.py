"""CRC-16/MODBUS by its definition, bit by bit: the oracle for the project's table-driven CRC."""

from __future__ import annotations


def crc16_bitwise(data: bytes) -> int:
    """Reflected polynomial 0xA001, initial value 0xFFFF, no final XOR, one bit at a time."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc

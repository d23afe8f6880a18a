"""Push many inputs through the re-assemblers and decoders; print a JSON line with the counts.

scripts/fuzz              # 1,000,000 inputs (DALY_FUZZ_INPUTS to change), seeded
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import random
import sys
import time

from aiodalybalancer import a5
from aiodalybalancer.errors import DalyError
from aiodalybalancer.frames import Direction, crc_ok, parse
from aiodalybalancer.models import Status
from aiodalybalancer.registers import LIVE
from aiodalybalancer.stream import D2Framing, FrameStream
from aiodalybalancer.tools.a5_device import A5DeviceState, answer

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "packages" / "aiodalybalancer" / "tests" / "vectors" / "balancer_capture.json"


def _inputs(rng: random.Random, frames: list[bytes]) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 160))
    frame = bytearray(rng.choice(frames))
    if kind == 1:  # mutate
        for _ in range(rng.randint(1, 3)):
            frame[rng.randrange(len(frame))] ^= rng.randrange(1, 256)
        return bytes(frame)
    if kind == 2:  # truncate
        return bytes(frame[: rng.randrange(1, len(frame))])
    if kind == 3:  # concatenate with noise between
        return bytes(frame) + rng.randbytes(rng.randrange(0, 8)) + rng.choice(frames)
    return bytes(frame)


def main() -> int:
    """Run the fuzz loop; exit 1 when anything unexpected happened."""
    total = int(os.environ.get("DALY_FUZZ_INPUTS", "1000000"))
    capture = json.loads(VECTORS.read_text())
    frames = [bytes.fromhex(r["hex"]) for r in capture["responses"]]
    frames += [
        answer(a5.build_request(c), A5DeviceState((3.3,) * 8, (25.0,), 26.4, (False,) * 8, 3.3, 0.02))[0]
        for c in (a5.Command.PACK, a5.Command.COUNTS, a5.Command.BALANCING)
    ]
    rng = random.Random(20261124)
    d2: FrameStream[object] = FrameStream(D2Framing(Direction.RESPONSE), partial_timeout=1e9)
    a5s = FrameStream(a5.A5Framing(), partial_timeout=1e9)
    unexpected = bad_crc = frames_out = 0
    started = time.perf_counter()
    for _ in range(total):
        data = _inputs(rng, frames)
        try:
            cut = rng.randrange(len(data) + 1)
            for chunk in (data[:cut], data[cut:]):
                for frame in d2.feed(chunk):
                    frames_out += 1
                    if not crc_ok(frame.encode()):  # type: ignore[attr-defined]
                        bad_crc += 1
                for frame in a5s.feed(chunk):
                    frames_out += 1
                    if a5.checksum(frame.encode()[:-1]) != frame.encode()[-1]:
                        bad_crc += 1
            try:
                parsed = parse(data, Direction.RESPONSE)
                values = getattr(parsed, "values", ())
                if len(values) == LIVE.count:
                    Status.from_d2(LIVE.decode(values), None, None)
            except DalyError:
                pass
        except Exception:  # counting the unexpected is the point
            unexpected += 1
    elapsed = time.perf_counter() - started
    print(f"{total} inputs, {frames_out} frames accepted, {elapsed:.1f} s", file=sys.stderr)
    print(
        json.dumps(
            {
                "fuzz_inputs": total,
                "frames_accepted": frames_out,
                "fuzz_unexpected_exceptions": unexpected,
                "bad_crc_accepted": bad_crc,
            }
        )
    )
    return 0 if unexpected == 0 and bad_crc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

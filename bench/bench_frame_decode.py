"""CPU cost of reading one incoming frame in the emulator: decode (bounded decoder) and field checks.

    python -m bench.bench_frame_decode [--frames 100000]

Uses process CPU time (best of five) so a busy machine skews it less than wall time. Figures only.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from devstack.emulator import frames
from devstack.emulator.codec import Described, UInt, encode_bytes
from devstack.emulator.inbound import check_performative

# what a receive-and-complete loop sends most: flow, transfer (a small message), disposition
BODIES = [
    encode_bytes(
        Described(frames.TRANSFER, [UInt(1), UInt(12345), b"0123456789abcdef", UInt(0), False, False])
    )
    + b"\x00\x53\x75\xa0\x10"
    + b"x" * 16,
    encode_bytes(
        Described(
            frames.FLOW, [UInt(1), UInt(5000), UInt(2), UInt(5000), UInt(1), UInt(10), UInt(100), None, False]
        )
    ),
    encode_bytes(Described(frames.DISPOSITION, [True, UInt(100), UInt(100), True, Described(0x24, [])])),
]


def _best_us_per_frame(fn: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(rounds):
            fn()
        best = min(best, time.process_time() - start)
    return best / (rounds * len(BODIES)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100_000, help="frames per round (split over 3 kinds)")
    args = parser.parse_args()
    rounds = max(args.frames // len(BODIES), 1)
    parsed = [frames.parse_frame_body(b) for b in BODIES]

    def decode_all() -> None:
        for body in BODIES:
            frames.parse_frame_body(body)

    def check_all() -> None:
        for code, fields, _ in parsed:
            check_performative(frames.FRAME_AMQP, code, fields)

    decode_us = _best_us_per_frame(decode_all, rounds)
    check_us = _best_us_per_frame(check_all, rounds)
    print(f"decode performative: {decode_us:.2f} us/frame")
    print(f"check fields:        {check_us:.2f} us/frame")
    print(f"RESULT frame read: {decode_us + check_us:.2f} us/frame (CPU, best of 5)")


if __name__ == "__main__":
    main()

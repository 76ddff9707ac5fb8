# Random sources for the card (unpredictable numbers, ICC dynamic numbers).
# The default is the platform's; CountingRandom is a pinned source for tests
# and byte-for-byte comparisons between the emulator and the firmware.

from ..crypto import provider


class CountingRandom:
    # Yields 01 02 03 ... across calls, the same on every interpreter.
    def __init__(self) -> None:
        self.counter = 0

    def __call__(self, n: int) -> bytes:
        out = bytes([(self.counter + i + 1) & 0xFF for i in range(n)])
        self.counter += n
        return out


def source(name: "str | None"):
    # "counting" for the pinned source, None or "os" for the platform's.
    if name in (None, "", "os"):
        return provider.random_bytes
    if name == "counting":
        return CountingRandom()
    raise ValueError("unknown random source %r (os, counting)" % name)

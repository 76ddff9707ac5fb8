# The bus a front-end chip hangs on, as its driver sees it: an object with
#
#   write(buf)                 put all of buf on the bus, in order
#   readinto(buf, timeout_ms)  the bytes that arrived, at most len(buf);
#                              waits at most timeout_ms for the first one
#                              (0: never waits); returns how many (0: none)
#
# A driver never asks for more than it needs and never blocks longer than
# the timeout it gives, so the token can serve its dev link between two
# polls. Boards make their bus: qemu_mps2.NfcUart (UART1 by its registers),
# UartBus around a machine.UART. MemoryBus is a bus in memory, for tests.

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_SLICE_MS = const(1)  # how long UartBus waits between two looks at its UART


class MemoryBus:
    # One end of a link in memory: write() appends to `tx` (what the other
    # side reads), readinto() takes from `rx`. Single-threaded: the test plays
    # the other side between two driver calls, so a read never waits.
    def __init__(self) -> None:
        self.tx = bytearray()
        self.rx = bytearray()

    def write(self, buf) -> None:
        self.tx.extend(buf)

    def readinto(self, buf, timeout_ms: int = 0) -> int:
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx[:n] = b""
        return n

    def feed(self, data) -> None:
        # Bytes from the other side, for readinto.
        self.rx.extend(data)

    def take(self) -> bytes:
        # What the driver wrote since the last take().
        out = bytes(self.tx)
        self.tx[:] = b""
        return out


class UartBus:
    # A machine.UART (any(), readinto(), write()) as a bus.
    def __init__(self, uart, ticks_ms, ticks_diff, sleep_ms=None) -> None:
        self.uart = uart
        self.ticks_ms = ticks_ms
        self.ticks_diff = ticks_diff
        self.sleep_ms = sleep_ms

    def write(self, buf) -> None:
        self.uart.write(buf)

    def readinto(self, buf, timeout_ms: int = 0) -> int:
        start = self.ticks_ms()
        while not self.uart.any():
            if self.ticks_diff(self.ticks_ms(), start) >= timeout_ms:
                return 0
            if self.sleep_ms is not None:
                self.sleep_ms(_SLICE_MS)
        n = self.uart.readinto(buf, min(len(buf), self.uart.any()))
        return n or 0

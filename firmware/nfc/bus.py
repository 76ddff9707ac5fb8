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
# UartBus around a machine.UART, I2cBus around a machine.I2C and the chip's
# IRQ pin. MemoryBus is a byte stream in memory, MemoryI2cBus a packet
# chip's I2C in memory, for tests.
#
# On I2C (the NCI chips, PN7150/PN7160) a read is one I2C transaction: it
# gives what it asks for, from the packet the chip holds (the chip raises
# IRQ while it has one); readinto returns 0 when IRQ stays low, and on the
# in-memory bus fewer bytes when the chip's packet ends before the read does
# (on the wire the rest would be filler: the NCI driver checks lengths).

try:
    from micropython import const
except ImportError:
    const = lambda x: x  # noqa: E731

_SLICE_MS = const(1)  # how long UartBus waits between two looks at its UART


def platform_ticks():
    # (ticks_ms, ticks_diff) of the platform, for a driver given none: MicroPython's
    # wrapping ticks, plain milliseconds on CPython.
    import time

    # (getattr: each interpreter's stubs know only one of the two clocks)
    ticks_ms = getattr(time, "ticks_ms", None)
    if ticks_ms is not None:
        return ticks_ms, getattr(time, "ticks_diff")  # noqa: B009
    clock = getattr(time, "monotonic")  # noqa: B009
    return (lambda: int(clock() * 1000)), (lambda a, b: a - b)


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


class I2cBus:
    # A chip on I2C with an IRQ line that is high while the chip has
    # something to read (PN7150/PN7160 at 0x28: no status byte, no
    # checksum): write() is one I2C write; readinto() waits for IRQ, then
    # reads len(buf) bytes in one transaction. The chip may NACK the first
    # write after standby (it wakes on it): that write is tried again once.
    def __init__(self, i2c, addr: int, irq, ticks_ms, ticks_diff, sleep_ms=None) -> None:
        self.i2c = i2c
        self.addr = addr
        self.irq = irq
        self.ticks_ms = ticks_ms
        self.ticks_diff = ticks_diff
        self.sleep_ms = sleep_ms

    def write(self, buf) -> None:
        try:
            self.i2c.writeto(self.addr, buf)
        except OSError:
            if self.sleep_ms is not None:
                self.sleep_ms(_SLICE_MS)
            self.i2c.writeto(self.addr, buf)

    def readinto(self, buf, timeout_ms: int = 0) -> int:
        start = self.ticks_ms()
        while not self.irq.value():
            if self.ticks_diff(self.ticks_ms(), start) >= timeout_ms:
                return 0
            if self.sleep_ms is not None:
                self.sleep_ms(_SLICE_MS)
        self.i2c.readfrom_into(self.addr, buf)
        return len(buf)


class MemoryI2cBus:
    # A packet chip's I2C in memory: feed() queues one packet the chip holds
    # (IRQ high while any is queued); readinto() reads on from the packet at
    # the head, never past its end; write() records each I2C write in
    # `writes`. Single-threaded, like MemoryBus.
    def __init__(self) -> None:
        self.packets = []  # type: list
        self.at = 0  # bytes of packets[0] read
        self.writes = []  # type: list

    def write(self, buf) -> None:
        self.writes.append(bytes(buf))

    def readinto(self, buf, timeout_ms: int = 0) -> int:
        if not self.packets:
            return 0
        packet = self.packets[0]
        n = min(len(buf), len(packet) - self.at)
        buf[:n] = packet[self.at:self.at + n]
        self.at += n
        if self.at >= len(packet):
            self.packets.pop(0)
            self.at = 0
        return n

    def feed(self, packet) -> None:
        self.packets.append(bytes(packet))

    def take(self) -> list:
        # The writes since the last take(), one bytes per I2C write.
        out = self.writes
        self.writes = []
        return out

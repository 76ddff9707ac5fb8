# What every MicroPython microcontroller board here does the same way: the
# clock is time.ticks_ms (no RTC is set at power-up: never time.time()), and
# machine.reset() restarts the chip (on QEMU with -no-reboot it ends QEMU).
# The board modules import these; a board that differs defines its own.


def ticks_ms():  # an int modulo 2**30 (time.ticks_ms)
    import time

    return time.ticks_ms()


def ticks_diff(new: int, old: int) -> int:
    import time

    return time.ticks_diff(new, old)


def reset() -> None:
    import machine

    machine.reset()

"""The PN532 chain on CPython: the firmware's driver against the strict chip simulator, tapped over nfcpy's udp.

Three layers: the simulator's host link alone (frames in, exact bytes out, as UM0701-02 says), in each
of its framings (HSU, I2C, SPI); the driver against it over an in-memory bus, with frames damaged on the
wire; and whole transactions: ``nfc:udp`` reader -> simulator RF side (emvkit's ISO-DEP engine) ->
TgGetData/TgSetData -> the driver (over HSU, I2C or SPI) -> the card application.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emvkit.firmware.nfc.pn532 import I2cLink, Pn532Target, SpiLink
from emvkit.terminal.chipsim.pn532 import ACK, ERROR_FRAME, NACK, MemoryLink, Pn532Chip, Pn532Simulator, frame
from emvkit.terminal.config_files import load_config
from emvkit.terminal.emulator.cards import open_card
from emvkit.terminal.errors import ConfigError
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import run_transaction
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.qemu import from_url as qemu_from_url
from tests.front_end_chain import DriverChain, started

WAKE = b"\x55\x55" + bytes(14)
SAM = frame(0xD4, b"\x14\x01\x14\x00")
TG_GET_DATA = frame(0xD4, b"\x86")
INIT_PARAMS = b"\x05\x04\x00\x01\x02\x03\x20" + bytes(28) + b"\x00\x00"


# --- the simulator's host link alone ---------------------------------------------------------------


class Wire:
    def __init__(self) -> None:
        self.out = bytearray()
        self.chip = Pn532Chip(self.out.extend)

    def send(self, data: bytes) -> bytes:
        """Bytes to the chip; what it answered at once."""
        start = len(self.out)
        self.chip.receive(data)
        return bytes(self.out[start:])


def configured() -> Wire:
    wire = Wire()
    assert wire.send(WAKE + SAM) == ACK + frame(0xD5, b"\x15")
    return wire


def test_asleep_chip_ignores_everything_before_the_wake_up_byte() -> None:
    wire = Wire()
    assert wire.send(SAM) == b""
    assert wire.send(b"\x55" + bytes(10) + SAM) == ACK + frame(0xD5, b"\x15")


def test_low_vbat_takes_no_command_but_sam_configuration() -> None:
    wire = Wire()
    assert wire.send(WAKE + TG_GET_DATA) == b""
    assert wire.send(SAM) == ACK + frame(0xD5, b"\x15")


@pytest.mark.parametrize("damage", ["lcs", "dcs"])
def test_bad_checksum_gets_no_answer(damage: str) -> None:
    wire = configured()
    bad = bytearray(TG_GET_DATA)
    bad[4 if damage == "lcs" else -2] ^= 0x01
    assert wire.send(bytes(bad)) == b""
    assert wire.chip.log[-1] == f"bad {damage.upper()}"


def test_nack_gets_the_last_response_again() -> None:
    wire = configured()
    assert wire.send(NACK) == frame(0xD5, b"\x15")


def test_unknown_command_and_wrong_lengths_get_the_error_frame() -> None:
    wire = configured()
    assert wire.send(frame(0xD4, b"\x4a\x01\x00")) == ACK + ERROR_FRAME  # InListPassiveTarget: not simulated
    assert wire.send(frame(0xD4, b"\x8c" + INIT_PARAMS[:-1])) == ACK + ERROR_FRAME  # Tk length byte missing
    assert wire.send(frame(0xD4, b"\x8c" + INIT_PARAMS + b"\x00")) == ACK + ERROR_FRAME  # one byte too many
    assert wire.send(frame(0xD4, b"\x86\x00")) == ACK + ERROR_FRAME  # TgGetData takes no parameters


def test_target_commands_before_activation_say_not_in_context() -> None:
    wire = configured()
    assert wire.send(TG_GET_DATA) == ACK + frame(0xD5, b"\x87\x27")
    assert wire.send(frame(0xD4, b"\x8e\x90\x00")) == ACK + frame(0xD5, b"\x8f\x27")


def test_tg_init_as_target_is_answered_on_activation_and_aborted_by_ack() -> None:
    wire = configured()
    assert wire.send(frame(0xD4, b"\x8c" + INIT_PARAMS)) == ACK
    armed = wire.chip.wait_listening(0)
    assert armed is not None and armed.uid == b"\x08\x01\x02\x03"
    assert wire.send(TG_GET_DATA) == b""  # busy: not taken
    assert wire.send(ACK) == b""  # aborted
    assert wire.chip.wait_listening(0) is None and not wire.chip.rf_activate(b"\xe0\x80")
    assert wire.send(frame(0xD4, b"\x8c" + INIT_PARAMS)) == ACK
    assert wire.chip.rf_activate(b"\xe0\x80")
    assert bytes(wire.out[-len(frame(0xD5, b"\x8d\x08\xe0\x80")):]) == frame(0xD5, b"\x8d\x08\xe0\x80")


# --- the driver against the simulator --------------------------------------------------------------


def firmware_bus(link: MemoryLink, lsb_first: bool = True) -> Any:
    """The bus the firmware's driver takes in the link's framing: the stream itself, or the I2C/SPI link on it."""
    if link.framing == "i2c":
        return I2cLink(link.firmware_i2c)
    if link.framing == "spi":
        return SpiLink(link.firmware_spi, link.firmware_cs, lsb_first=lsb_first)
    return link.firmware_bus


def pn532_chain(card: Any, framing: str = "hsu") -> DriverChain:
    """The PN532 driver against the simulated chip, in ``framing``."""
    link = MemoryLink(framing=framing)
    return DriverChain(link, card, lambda card_of: Pn532Target(firmware_bus(link), card_of, ack_ms=50, get_ms=3000),
                       Pn532Simulator, "pn532-driver")


@pytest.fixture
def chain() -> Iterator[Callable[..., DriverChain]]:
    yield from started(pn532_chain)


def tap(url: str) -> Any:
    with open_transport(f"{url}?timeout=5") as transport:
        return run_transaction(transport, load_config(), TransactionRequest(amount=1234))


@pytest.mark.parametrize("framing", ["hsu", "i2c", "spi"])
@pytest.mark.parametrize(("profile", "oda"), [("visa", "fDDA"), ("mastercard", "CDA")])
def test_transaction_through_the_driver_and_the_simulated_chip(chain: Callable[..., DriverChain], profile: str,
                                                               oda: str, framing: str) -> None:
    c = chain(open_card(profile), framing)
    for _ in range(2):  # the driver arms the chip again after each tap
        result = tap(c.url)
        assert result.result.outcome.outcome is Outcome.APPROVED, result.result.error
        assert (result.result.oda, result.result.oda_result) == (oda, "successful")
    assert c.driver.activations == 2 and c.driver.apdus == 2 * result.apdus


class EchoCard:
    """Answers every C-APDU with ``size`` bytes of its own and 9000."""

    profile = None

    def __init__(self, size: int) -> None:
        self.size = size
        self.seen: list[bytes] = []

    def process(self, apdu: bytes) -> bytes:
        self.seen.append(apdu)
        return bytes(i & 0xFF for i in range(self.size)) + b"\x90\x00"


@pytest.mark.parametrize("framing", ["hsu", "i2c", "spi"])
def test_long_apdus_are_chained_over_the_host_link(chain: Callable[..., DriverChain], framing: str) -> None:
    card = EchoCard(600)
    c = chain(card, framing)
    frames: list[tuple[str, bytes]] = []
    c.link.taps.append(lambda who, data: frames.append((who, data)))
    command = b"\x80\xca\x00\x00\xff" + bytes(300) + b"\x00"  # 306 bytes: TgGetData with MI, then the rest
    with open_transport(f"{c.url}?timeout=5") as transport:
        response = transport.transmit(command)
    assert card.seen == [command]
    assert response == bytes(i & 0xFF for i in range(600)) + b"\x90\x00"
    assert any(who == "host" and b"\xd4\x94" in data for who, data in frames)  # TgSetMetaData
    assert any(who == "chip" and b"\xd5\x87\x40" in data for who, data in frames)  # TgGetData, MI set


def corrupt_every(nth: int, code: int) -> Callable[[bytes], bytes]:
    """A wire that flips the DCS of every ``nth`` frame of the host's command ``code``."""
    count = [0]

    def wire(data: bytes) -> bytes:
        if len(data) > 7 and data[5:7] == bytes((0xD4, code)):
            count[0] += 1
            if count[0] % nth == 0:
                return data[:-2] + bytes((data[-2] ^ 0xFF,)) + data[-1:]
        return data

    return wire


def test_driver_recovers_from_frames_damaged_on_the_wire(chain: Callable[..., DriverChain]) -> None:
    c = chain(open_card("visa"))
    c.link.firmware_bus.filters.append(corrupt_every(3, 0x8E))  # every third TgSetData: no ACK, sent again
    result = tap(c.url)
    assert result.result.outcome.outcome is Outcome.APPROVED, result.result.error
    assert sum(1 for line in c.link.chip.log if line == "bad DCS") >= 2


def test_garbage_and_error_frames_from_the_chip_end_in_a_rearm(chain: Callable[..., DriverChain]) -> None:
    c = chain(open_card("visa"))
    assert tap(c.url).result.outcome.outcome is Outcome.APPROVED
    armed = c.link.chip.wait_listening(5)
    assert armed is not None
    rearms = c.driver.rearms
    c.link.inject(b"\x00\x00\xff\x03\xfd\xd5\x8d\x08\x99\x00")  # a TgInitAsTarget answer with a bad DCS: NACKed
    c.link.inject(ERROR_FRAME)  # then an error frame: the driver aborts and arms again
    assert c.link.wait_for_log("cmd 8C", after=c.link.chip.log.count("cmd 8C"), timeout=5)
    assert c.driver.rearms == rearms + 1
    assert "nack" in c.link.chip.log
    result = tap(c.url)
    assert result.result.outcome.outcome is Outcome.APPROVED, result.result.error


def test_driver_with_no_chip_never_hangs() -> None:
    class Silent:
        written = 0

        def write(self, buf: Any) -> None:
            self.written += len(buf)

        def readinto(self, buf: Any, timeout_ms: int = 0) -> int:
            return 0

    now = [0]
    bus = Silent()
    driver = Pn532Target(bus, lambda: None, ticks_ms=lambda: now[0], ticks_diff=lambda a, b: a - b)
    for _ in range(40):
        driver.poll()
        now[0] += 60
    assert driver.wakeups >= 3 and bus.written > 0


# --- the I2C and SPI framings of the simulator, byte by byte -------------------------------------------------


SAM_ANSWER = frame(0xD5, b"\x15")


def test_i2c_a_read_before_ready_gets_the_not_ready_status_and_no_frame() -> None:
    link = MemoryLink(framing="i2c")
    i2c = link.firmware_i2c
    assert i2c.readfrom(0x24, 1) == b"\x00" and link.chip.log == ["wake"]  # the first transaction wakes it
    i2c.writeto(0x24, SAM)
    assert i2c.readfrom(0x24, 1) == b"\x01"  # the ACK is ready; a status-only read leaves it there
    assert i2c.readfrom(0x24, 7) == b"\x01" + ACK  # status, then the frame
    assert i2c.readfrom(0x24, 1 + len(SAM_ANSWER) + 3) == b"\x01" + SAM_ANSWER + bytes(3)  # then 00s
    assert i2c.readfrom(0x24, 8) == bytes(8)  # nothing more: not ready, no frame
    assert link.log == ["i2c: read before ready"]


def test_i2c_one_frame_per_read_and_what_is_not_read_is_lost_until_a_nack() -> None:
    link = MemoryLink(framing="i2c")
    i2c = link.firmware_i2c
    i2c.writeto(0x24, b"")
    i2c.writeto(0x24, SAM)
    assert i2c.readfrom(0x24, 40) == b"\x01" + ACK + bytes(33)  # the ACK alone, though the answer is ready too
    assert i2c.readfrom(0x24, 4) == b"\x01" + SAM_ANSWER[:3]
    assert link.log[-1].startswith("i2c: frame cut")
    assert i2c.readfrom(0x24, 1) == b"\x00"
    i2c.writeto(0x24, NACK)  # §6.2.2: the last response again
    assert i2c.readfrom(0x24, 1 + len(SAM_ANSWER)) == b"\x01" + SAM_ANSWER


def test_i2c_another_address_is_no_device() -> None:
    link = MemoryLink(framing="i2c")
    with pytest.raises(OSError) as info:
        link.firmware_i2c.writeto(0x48, SAM)  # the 8-bit write address, a common mistake
    assert info.value.errno == errno.ENODEV
    assert link.chip.awake is False


def spi_transaction(link: MemoryLink, out: bytes, n_in: int = 0) -> bytes:
    cs, spi = link.firmware_cs, link.firmware_spi
    cs.value(0)
    spi.write(out)
    got = bytearray(n_in)
    spi.readinto(got)
    cs.value(1)
    return bytes(got)


def test_spi_operation_bytes_status_then_data_read() -> None:
    link = MemoryLink(framing="spi")
    assert spi_transaction(link, b"\x02", 1) == b"\x00" and link.chip.log == ["wake"]  # the pulse that wakes it
    assert spi_transaction(link, b"\x02", 1) == b"\x00"  # awake, nothing ready
    assert spi_transaction(link, b"\x03", 6) == bytes(6)  # a data read before ready: 00s, nothing taken
    assert link.log == ["spi: read before ready"]
    spi_transaction(link, b"\x01" + SAM)  # DW and the frame
    assert spi_transaction(link, b"\x02", 1) == b"\x01"
    assert spi_transaction(link, b"\x03", 6) == ACK
    assert spi_transaction(link, b"\x03", len(SAM_ANSWER) + 2) == SAM_ANSWER + bytes(2)
    assert spi_transaction(link, b"\x02", 1) == b"\x00"
    assert spi_transaction(link, b"\x07", 3) == bytes(3) and link.log[-1] == "spi: unknown operation 07"


def test_spi_host_left_at_msb_first_gets_no_answer() -> None:
    link = MemoryLink(framing="spi", spi_lsb_first=False)
    spi_transaction(link, b"")  # wake
    spi_transaction(link, b"\x01" + SAM)  # the chip reads 80 (not DW) and the frame bit-reversed
    assert link.chip.received_frames == 0
    assert spi_transaction(link, b"\x02", 1) == b"\x00"
    rev = bytes(int(f"{b:08b}"[::-1], 2) for b in b"\x01" + SAM)  # what an MSB-first host must send: reversed
    spi_transaction(link, rev)
    assert link.chip.received_frames == 1
    assert spi_transaction(link, b"\x40", 1) == b"\x80"  # SR reversed; the status 01 comes back reversed


@pytest.mark.parametrize("framing", ["i2c", "spi"])
def test_the_driver_wakes_configures_and_arms_the_chip_over_i2c_and_spi(framing: str) -> None:
    link = MemoryLink(framing=framing)
    now = [0]
    driver = Pn532Target(firmware_bus(link), lambda: EchoCard(2), ticks_ms=lambda: now[0],
                         ticks_diff=lambda a, b: a - b)
    for _ in range(20):
        driver.poll()
        now[0] += 1
    assert link.chip.log[:4] == ["wake", "cmd 14", "cmd 8C", "armed uid 08010203"]
    assert driver.wakeups == 1 and link.chip.armed is not None


def test_an_msb_only_spi_works_with_the_driver_reversing_the_bits() -> None:
    link = MemoryLink(framing="spi", spi_lsb_first=False)  # an SPI that cannot send LSB first (RP2040, RP2350)
    now = [0]
    driver = Pn532Target(firmware_bus(link, lsb_first=False), lambda: EchoCard(2), ticks_ms=lambda: now[0],
                         ticks_diff=lambda a, b: a - b)
    for _ in range(20):
        driver.poll()
        now[0] += 1
    assert link.chip.armed is not None and driver.wakeups == 1


def test_the_driver_with_lsb_assumed_on_an_msb_spi_never_arms_and_never_hangs() -> None:
    link = MemoryLink(framing="spi", spi_lsb_first=False)
    now = [0]
    driver = Pn532Target(firmware_bus(link, lsb_first=True), lambda: EchoCard(2), ticks_ms=lambda: now[0],
                         ticks_diff=lambda a, b: a - b)
    for _ in range(60):
        driver.poll()
        now[0] += 60
    assert link.chip.armed is None and link.chip.received_frames == 0
    assert driver.wakeups >= 2  # started over after repeated failures


# --- the qemu: transport's front-end option ----------------------------------------------------------------


def test_qemu_url_names_only_a_known_front_end(tmp_path: Any) -> None:
    image = tmp_path / "firmware.elf"
    image.write_bytes(b"\x7fELF")
    transport = qemu_from_url(f"qemu:m3?front-end=pn532&image={image}")
    assert transport.front_end == "pn532"
    with pytest.raises(ConfigError, match="front-end='nci': one of pn532"):
        qemu_from_url(f"qemu:m3?front-end=nci&image={image}")

# What the NFC front-end driver cases (nci_cases, pn532_cases) give a driver in place of the card
# application and the board's clock. Portable: imported by name on CPython and MicroPython alike.


class FakeCard:
    # The card application as a driver sees it: process(apdu), power_on()/power_off(),
    # profile.atr_historical. Records each call in `events`; process() answers with answer(apdu).
    atr_historical = b"\x80\x73"

    def __init__(self):
        self.events = []
        self.profile = self

    def answer(self, apdu):
        raise NotImplementedError

    def process(self, apdu):
        self.events.append(bytes(apdu))
        return self.answer(bytes(apdu))

    def power_on(self):
        self.events.append("on")

    def power_off(self):
        self.events.append("off")


class FakeClock:
    # ticks_ms / ticks_diff that move only when a case sets `now`.
    def __init__(self):
        self.now = 0

    def ticks(self):
        return self.now

    def diff(self, a, b):
        return a - b

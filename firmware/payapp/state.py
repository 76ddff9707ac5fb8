# The card's persistent counters and transaction log.
#
# CardState is a plain record; a store keeps it between transactions. The
# in-memory store serves the emulator; the firmware backs the same
# interface with tearing-safe flash (a later module). A store's `save` is
# called once per state change that must survive a tear (ATC before the
# cryptogram leaves the card, EMV Book 3 §6.5.5).

_FIELDS = (
    "atc",  # Application Transaction Counter (9F36)
    "last_online_atc",  # Last Online ATC Register (9F13)
    "consecutive_offline",  # transactions approved offline since the last online one
    "offline_amount",  # cumulative offline amount since the last online one (minor units)
    "pin_try_counter",  # PIN Try Counter (9F17)
    "log",  # list of log records (bytes), newest first
)


class CardState:
    def __init__(self, atc: int = 0, last_online_atc: int = 0, consecutive_offline: int = 0,
                 offline_amount: int = 0, pin_try_counter: int = 3, log: "list | None" = None) -> None:
        self.atc = atc
        self.last_online_atc = last_online_atc
        self.consecutive_offline = consecutive_offline
        self.offline_amount = offline_amount
        self.pin_try_counter = pin_try_counter
        self.log = log if log is not None else []

    def to_dict(self) -> dict:
        out = {}
        for name in _FIELDS:
            out[name] = getattr(self, name)
        out["log"] = [r.hex() for r in self.log]
        return out

    @classmethod
    def from_dict(cls, doc: dict) -> "CardState":
        state = cls()
        for name in _FIELDS:
            if name in doc:
                setattr(state, name, doc[name])
        state.log = [bytes.fromhex(r) for r in doc.get("log", [])]
        return state


class MemoryStore:
    # Keeps the state in RAM (the emulator's default).
    def __init__(self, state: "CardState | None" = None) -> None:
        self.state = state if state is not None else CardState()
        self.saves = 0

    def load(self) -> CardState:
        return self.state

    def save(self, state: CardState) -> None:
        self.state = state
        self.saves += 1

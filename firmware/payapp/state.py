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
    "script_commands",  # issuer script commands with secure messaging processed (CVR; 4 bits)
    "script_failed",  # 1: an issuer script command failed in the last online transaction (CVR)
    "blocked",  # 1: the application is blocked (APPLICATION BLOCK; Book 3 §6.5.1)
    "log",  # list of log records (bytes), newest first
)


# name -> (lowest, highest) of each integer field.
LIMITS = {
    "atc": (0, 0xFFFF),  # n 2 bytes
    "last_online_atc": (0, 0xFFFF),
    "consecutive_offline": (0, 0xFFFFFFFF),
    "offline_amount": (0, 999999999999),  # n 12, as Amount, Authorised (9F02)
    "pin_try_counter": (0, 0xFF),  # b 1 byte
    "script_commands": (0, 15),
    "script_failed": (0, 1),
    "blocked": (0, 1),
}
# Fields added after stored states existed: absent from a stored state,
# they keep their default.
_ADDED = ("script_commands", "script_failed", "blocked")
MAX_LOG_RECORD = 255  # a log record is one READ RECORD answer


class StateError(ValueError):
    # A state document (a profile's "state" block, a stored state) that is
    # not a CardState; the message names the field.
    pass


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:20] + "..."


class CardState:
    def __init__(self, atc: int = 0, last_online_atc: int = 0, consecutive_offline: int = 0,
                 offline_amount: int = 0, pin_try_counter: int = 3, log: "list | None" = None,
                 script_commands: int = 0, script_failed: int = 0, blocked: int = 0) -> None:
        self.atc = atc
        self.last_online_atc = last_online_atc
        self.consecutive_offline = consecutive_offline
        self.offline_amount = offline_amount
        self.pin_try_counter = pin_try_counter
        self.script_commands = script_commands
        self.script_failed = script_failed
        self.blocked = blocked
        self.log = log if log is not None else []

    def to_dict(self) -> dict:
        out = {}
        for name in _FIELDS:
            out[name] = getattr(self, name)
        out["log"] = [r.hex() for r in self.log]
        return out

    @classmethod
    def from_dict(cls, doc, where: str = "state", complete: bool = False) -> "CardState":
        # Every field checked (StateError naming it); an absent field keeps
        # its default unless `complete` (a stored state has every field).
        if not isinstance(doc, dict):
            raise StateError("%s: expected an object, not %s" % (where, _shown(doc)))
        for name in doc:
            if name not in _FIELDS:
                raise StateError("%s: unknown field %s" % (where, _shown(name)))
        state = cls()
        for name in LIMITS:
            if name not in doc and (not complete or name in _ADDED):
                continue
            value = doc.get(name)
            low, high = LIMITS[name]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise StateError("%s.%s must be an integer %d..%d, not %s" % (where, name, low, high, _shown(value)))
            setattr(state, name, value)
        if "log" in doc or complete:
            log = doc.get("log")
            if not isinstance(log, list):
                raise StateError("%s.log must be a list of hex strings, not %s" % (where, _shown(log)))
            records = []
            for i, entry in enumerate(log):
                record = None
                if isinstance(entry, str):
                    try:
                        record = bytes.fromhex(entry)
                    except ValueError:
                        pass
                if record is None or not 0 < len(record) <= MAX_LOG_RECORD:
                    raise StateError("%s.log[%d] must be a hex string of 1..%d bytes, not %s"
                                     % (where, i, MAX_LOG_RECORD, _shown(entry)))
                records.append(record)
            state.log = records
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

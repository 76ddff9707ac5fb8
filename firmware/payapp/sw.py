# Status words the card application answers (ISO 7816-4 §5.1.3, EMV Book 3
# §6.3.5) and SwError, which any handler raises to end a command with one.

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_WRONG_DATA = 0x6A80
SW_FUNCTION_NOT_SUPPORTED = 0x6A81
SW_FILE_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
SW_WRONG_P1P2 = 0x6A86
SW_DATA_NOT_FOUND = 0x6A88
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_UNKNOWN = 0x6F00


class SwError(Exception):
    # Raised by a command handler; Card.process turns it into the status word.
    def __init__(self, sw: int) -> None:
        super().__init__("SW %04X" % sw)
        self.sw = sw

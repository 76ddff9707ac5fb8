# SwError, which any command handler raises to end a command with a status
# word (the status words themselves are in firmware/iso7816.py).


class SwError(Exception):
    # Raised by a command handler; Card.process turns it into the status word.
    def __init__(self, sw: int) -> None:
        super().__init__("SW %04X" % sw)
        self.sw = sw

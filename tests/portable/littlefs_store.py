# Power cuts under littlefs (MicroPython only: os.VfsLfs2, the token's
# filesystem): a RAM block device that fails in the middle of its Nth block
# write or erase, littlefs mounted on it, the card's SlotFile on a file
# inside. Run by tests/test_store.py under the unix port:
#   micropython tests/portable/run.py littlefs_store
# Plain asserts only; the helpers come from store_cases.py.
import gc
import os

from store_cases import _SLOT, _Recorder, _Released, _restart, _transaction

_MOUNT = "/lfs"
_PATH = _MOUNT + "/card.state"
_BLOCK = 512
_BLOCKS = 64


class _Flash:
    # NOR-like RAM flash: a program can only clear bits, an erase sets a
    # block to FF. Once `budget` programs/erases have gone through, the next
    # one does half its work and raises OSError (EIO): the power is gone.
    # littlefs reaches it through a _Port, one per power-up.
    def __init__(self):
        self.data = bytearray(b"\xff" * (_BLOCK * _BLOCKS))
        self.budget = None
        self.ops = 0
        self.erases = 0
        self.port = None

    def power_up(self):
        # A new port for a new mount. File objects of the old mount that
        # the cut left open would flush into the medium when the garbage
        # collector finalises them; no such write can happen after a real
        # cut. So they are finalised now, with the old port writable, and
        # the medium is put back as the cut left it; anything finalised
        # later hits a ghost port that drops it.
        old = self.port
        if old is not None:
            as_cut = bytes(self.data)
            budget, ops, erases = self.budget, self.ops, self.erases
            self.budget = None
            old.alive = True
            gc.collect()
            self.data[:] = as_cut
            self.budget, self.ops, self.erases = budget, ops, erases
            old.ghost = True
        self.port = _Port(self)
        return self.port

    def spend(self):
        self.ops += 1
        return self.budget is None or self.ops <= self.budget


class _Port:
    # The block device littlefs sees, on the extended protocol (block
    # number plus byte offset). After the cut every operation fails; a
    # ghost's programs and erases are dropped, silently. No allocation
    # here: finalisers may call it with the heap locked.
    def __init__(self, flash):
        self.flash = flash
        self.alive = True
        self.ghost = False

    def _check(self):
        # True: go ahead; False: drop it (a ghost).
        if self.ghost:
            return False
        if not self.alive:
            raise OSError(5)
        return True

    def readblocks(self, block, buf, offset=0):
        data = self.flash.data
        start = block * _BLOCK + offset
        for i in range(len(buf)):
            buf[i] = data[start + i]

    def writeblocks(self, block, buf, offset=0):
        if not self._check():
            return
        ok = self.flash.spend()
        n = len(buf) if ok else len(buf) // 2
        data = self.flash.data
        start = block * _BLOCK + offset
        for i in range(n):
            data[start + i] &= buf[i]
        if not ok:
            self.alive = False
            raise OSError(5)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return _BLOCKS
        if op == 5:  # block size
            return _BLOCK
        if op == 6:  # erase
            if not self._check():
                return 0
            ok = self.flash.spend()
            self.flash.erases += 1
            data = self.flash.data
            start = arg * _BLOCK
            for i in range(_BLOCK if ok else _BLOCK // 2):
                data[start + i] = 0xFF
            if not ok:
                self.alive = False
                raise OSError(5)
        return 0


def _mount(flash):
    os.mount(os.VfsLfs2(flash.power_up()), _MOUNT)


def _umount():
    try:
        os.umount(_MOUNT)
    except OSError:
        pass


def _run(name, log, seen, first, count):
    card = _restart(_PATH, name, None, log, seen, open)
    for number in range(first, first + count):
        _transaction(card, name, seen, number)


def _cut_at_every_block_operation(name, transactions=4):
    # As store_cases._cut_at_every_byte, with littlefs between the SlotFile
    # and the medium: a run of `transactions` after one that went through,
    # cut at its 0th, 1st, ... block operation (program or erase); after
    # each cut the flash mounts, the file holds the old or the new state,
    # and a whole transaction then uses a higher ATC. Returns (cut points,
    # erases among them).
    flash = _Flash()
    os.VfsLfs2.mkfs(flash.power_up())
    log = {"acked": None, "pending": None}
    seen = _Released()
    _mount(flash)
    try:
        _transaction(_restart(_PATH, name, None, log, seen, open), name, seen, 0)
        _umount()
        base_flash, base_log, base_seen = bytes(flash.data), dict(log), seen.copy()
        _mount(flash)
        flash.ops = flash.erases = 0
        _run(name, log, seen, 1, transactions)
        total, erases = flash.ops, flash.erases
        _umount()
        assert total > 0
        for n in range(total + 1):
            flash.data[:] = base_flash
            flash.budget = n
            flash.ops = 0
            log = dict(base_log)
            seen = base_seen.copy()
            _mount(flash)
            cut = False
            try:
                _run(name, log, seen, 1, transactions)
            except OSError:
                cut = True
            _umount()
            assert cut == (n < total), (n, total)
            flash.budget = None
            _mount(flash)  # must mount after any cut
            _run(name, log, seen, 1 + transactions, 1)
            assert seen.last[0] == 1 + transactions
            _umount()
        return total, erases
    finally:
        _umount()


def test_power_cut_on_littlefs_at_every_block_operation_visa():
    total, erases = _cut_at_every_block_operation("visa")
    assert total > 8 and erases > 0, (total, erases)


def test_power_cut_on_littlefs_at_every_block_operation_mastercard():
    total, erases = _cut_at_every_block_operation("mastercard")
    assert total > 8 and erases > 0, (total, erases)


def test_a_slot_file_on_littlefs_round_trips():
    flash = _Flash()
    os.VfsLfs2.mkfs(flash.power_up())
    _mount(flash)
    try:
        log = {"acked": None, "pending": None}
        slots = _Recorder(_PATH, _SLOT, open, log)
        assert slots.read() is None
        for payload in (b"one", b"two" * 100, b"three"):
            slots.write(payload)
        _umount()
        _mount(flash)
        assert _Recorder(_PATH, _SLOT, open, log).read() == b"three"
        assert os.stat(_PATH)[6] == _SLOT + 17 + 300
    finally:
        _umount()

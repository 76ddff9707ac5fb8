"""The fuzz corpus: real inputs for every target, from the repository's own sessions.

Two sources, both real exchanges: the scripted card sessions in tests/vectors/cards/*.apdu
(written from the specifications and public sample data; their wildcard bytes read as 00), and two
transactions on each built-in card (emu:visa, emu:mastercard, emu:unionpay, emu:wearable,
emu:unionpay-sm), one under the floor limit and one over it, going online to the built-in issuer
host: its ISO 8583 requests and answers. Each target's inputs are cut from them as
tests/fuzz/targets.py reads its input. Files are named by the SHA-1 of their bytes. The built-in
cards' sessions carry fresh unpredictable numbers, so writing again adds new files beside the old
ones.

    .venv/bin/python -m tests.fuzz.corpus          # (re)writes tests/fuzz/corpus/<target>/
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from emvkit.firmware import link, tlv
from emvkit.terminal.config_files import load_config
from emvkit.terminal.host.iso8583 import encode_request, encode_response
from emvkit.terminal.kernel.authorisation import AuthorisationRequest, AuthorisationResponse, Authoriser
from emvkit.terminal.kernel.context import TransactionRequest
from emvkit.terminal.session import make_authoriser, run_transaction
from emvkit.terminal.transport import open_transport
from emvkit.terminal.transport.scripted import parse_script
from tests.fuzz.targets import CARDS, TARGETS, join_records

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SESSIONS = HERE.parent / "vectors" / "cards"
BUILTIN_CARDS = CARDS
_DOL_TAGS = (0x9F38, 0x8C, 0x8D, 0x9F49)  # PDOL, CDOL1, CDOL2, DDOL


@dataclass
class Session:
    """One card session: the commands and responses in order, and the ISO 8583 messages it caused."""

    name: str
    card: str  # the built-in profile that answered (or, for a recorded session, its scheme's)
    commands: list[bytes]
    responses: list[bytes]
    online: bool = False
    messages: list[bytes] = field(default_factory=list)


class _Recording:
    """The built-in issuer, keeping each request and answer as ISO 8583 puts them on the wire."""

    def __init__(self, inner: Authoriser, messages: list[bytes]) -> None:
        self.inner, self.messages = inner, messages

    def authorise(self, request: AuthorisationRequest) -> AuthorisationResponse:
        response = self.inner.authorise(request)
        self.messages += [encode_request(request), encode_response(response, request)]
        return response


def sessions() -> list[Session]:
    out = []
    for path in sorted(SESSIONS.glob("*.apdu")):
        steps = parse_script(path.read_text(), str(path))
        scheme = next((c for c in CARDS if path.stem.startswith(c)), CARDS[0])
        out.append(Session(path.stem, scheme, [c.value for c, _ in steps], [r for _, r in steps if r is not None]))
    for name in BUILTIN_CARDS:
        for amount in (1234, 4000):  # under the floor limit (offline), over it (online)
            messages: list[bytes] = []
            authoriser = make_authoriser("builtin", f"emu:{name}")
            assert authoriser is not None
            with open_transport(f"emu:{name}") as transport:
                tap = run_transaction(transport, load_config(), TransactionRequest(amount=amount),
                                      _Recording(authoriser, messages))
            exchanges = tap.trace.exchanges
            out.append(Session(f"emu-{name}-{amount}", name, [e.command for e in exchanges],
                               [e.response for e in exchanges if e.response is not None], True, messages))
    return out


def _dols(response: bytes) -> list[bytes]:
    try:
        found = tlv.flatten(tlv.decode(response[:-2]))
    except tlv.TLVError:
        return []
    return [found[tag] for tag in _DOL_TAGS if tag in found]


def inputs(session: Session) -> dict[str, list[bytes]]:
    """Each target's inputs from one session."""
    wire = [link.encode_frame(link.POWER_ON, 0), link.encode_frame(link.ATR, 0, bytes.fromhex("3B80800101"))]
    for seq, (command, response) in enumerate(zip(session.commands, session.responses, strict=False), 1):
        wire += [link.encode_frame(link.APDU_COMMAND, seq & 0xFF, command),
                 link.encode_frame(link.APDU_RESPONSE, seq & 0xFF, response)]
    return {
        "tlv": [r[:-2] for r in session.responses if len(r) > 2],
        "dol": [d + b"\x00" + c[5:] for r, c in zip(session.responses, session.commands[1:], strict=False)
                for d in _dols(r)],
        "apdu": session.commands + session.responses,
        "card": [bytes((CARDS.index(session.card),)) + join_records(session.commands)],
        "kernel": [bytes((1 | (4 if session.online else 0),)) + join_records(session.responses)],
        "link": [b"".join(wire)],
        "iso8583": session.messages,
    }


def write(root: Path = CORPUS) -> dict[str, int]:
    """Write every target's corpus under ``root``; returns the number of files per target."""
    counts = {}
    collected: dict[str, set[bytes]] = {name: set() for name in TARGETS}
    for session in sessions():
        for name, found in inputs(session).items():
            collected[name].update(found)
    for name, found in collected.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in found:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        counts[name] = len(list(folder.iterdir()))
    return counts


def load(name: str, root: Path = CORPUS) -> list[bytes]:
    """The corpus of target ``name``, in a stable order."""
    return [path.read_bytes() for path in sorted((root / name).iterdir())]


if __name__ == "__main__":
    for target, count in write().items():
        print(f"{target}: {count} inputs in {CORPUS / target}")

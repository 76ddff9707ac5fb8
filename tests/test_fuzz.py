"""The fuzz targets as bounded property tests (long runs: `make fuzz`, tests/fuzz/).

Every target of tests/fuzz/targets.py gets arbitrary bytes and mutations of its corpus (real inputs
from the repository's sessions, tests/fuzz/corpus/); the properties are the targets' own: no
exception but the unit's typed error, the kernel ending in an Outcome, round trips where they exist.
The example counts keep the module to seconds; `make fuzz` runs the same targets for as long as asked.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emvkit.firmware import link, tlv
from emvkit.terminal.apdu import Channel
from emvkit.terminal.kernel.outcome import Outcome
from emvkit.terminal.session import drive
from tests.conftest import HANG_S, ROOT
from tests.fuzz import targets
from tests.fuzz.corpus import load
from tests.fuzz.targets import TARGETS, join_records, records

# No deadline: a loaded machine makes any example slow now and then, and a hang is not what these find.
bounded = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RECORD_TARGETS = {"card", "kernel"}  # one leading byte, then 2-byte-length records (targets.records)


@st.composite
def _edited(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few byte-level edits: flips, overwrites, insertions, deletions, a cut."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        at = draw(st.integers(0, len(out)))
        if kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif not out:
            continue
        elif kind == "cut":
            del out[at:]
        else:
            at = min(at, len(out) - 1)
            if kind == "flip":
                out[at] ^= 1 << draw(st.integers(0, 7))
            elif kind == "set":
                out[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x82, 0xFF, draw(st.integers(0, 255))]))
            else:
                del out[at:at + draw(st.integers(1, 8))]
    return bytes(out)


@st.composite
def _edited_records(draw: st.DrawFn, data: bytes) -> bytes:
    """A record input with one record edited, dropped or repeated, the framing kept intact."""
    head, messages = data[:1], records(data[1:])
    if not messages:
        return data
    i = draw(st.integers(0, len(messages) - 1))
    kind = draw(st.sampled_from(["edit", "drop", "repeat"]))
    if kind == "edit":
        messages[i] = draw(_edited(messages[i]))
    elif kind == "drop":
        del messages[i]
    else:
        messages.insert(i, messages[i])
    return head + join_records(messages)


def inputs(name: str) -> st.SearchStrategy[bytes]:
    corpus = load(name)
    mutate = _edited_records if name in RECORD_TARGETS else _edited
    return st.one_of(st.binary(max_size=600), st.sampled_from(corpus).flatmap(mutate))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_corpus_is_real_and_passes(name: str) -> None:
    corpus = load(name)
    assert len(corpus) >= 5, f"tests/fuzz/corpus/{name}: run `python -m tests.fuzz.corpus`"
    for data in corpus:
        TARGETS[name](data)


@given(inputs("tlv"))
@bounded
def test_tlv(data: bytes) -> None:
    targets.tlv_decode(data)


@given(inputs("dol"))
@bounded
def test_dol(data: bytes) -> None:
    targets.dol(data)


@given(inputs("apdu"))
@bounded
def test_apdu(data: bytes) -> None:
    targets.apdu(data)


@given(inputs("card"))
@bounded
def test_card_application(data: bytes) -> None:
    targets.card(data)


@given(inputs("kernel"))
@bounded
def test_kernel_on_any_card_responses(data: bytes) -> None:
    targets.kernel(data)


@given(inputs("link"))
@bounded
def test_link_decoder(data: bytes) -> None:
    targets.link_decoder(data)


@given(inputs("iso8583"))
@bounded
def test_iso8583_answer(data: bytes) -> None:
    targets.iso8583_answer(data)


# --- the targets can fail, and read their inputs as the corpus writes them ---


def test_the_kernel_corpus_reaches_the_end_of_transactions() -> None:
    """The recorded responses, replayed, carry transactions to the outcomes they had (the records are
    read as written): not every one ends at the first command."""
    outcomes = set()
    for data in load("kernel"):
        result = drive(targets.transaction(targets._config(), targets._request(1234), online=bool(data[0] & 4)),
                       Channel(targets._Responses(records(data[1:]))), None)
        outcomes.add(result.outcome.outcome)
    assert {Outcome.APPROVED, Outcome.ONLINE_REQUEST} & outcomes, outcomes


def test_a_broken_decoder_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    def decode(data: bytes) -> list[tlv.TLV]:
        raise IndexError("out of range")

    monkeypatch.setattr(tlv, "decode", decode)
    with pytest.raises(IndexError):
        targets.tlv_decode(b"\x5a\x01\x00")


def test_a_frame_that_does_not_round_trip_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    encode = link.encode_frame
    monkeypatch.setattr(link, "encode_frame", lambda t, s, p=b"": encode(t, s ^ 1, p))
    with pytest.raises(AssertionError):
        targets.link_decoder(encode(link.APDU_COMMAND, 1, b"\x00\xa4"))


# --- the atheris harnesses (`make fuzz`) ---


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_atheris_harness_runs(name: str, tmp_path: object) -> None:
    pytest.importorskip("atheris")
    done = subprocess.run([sys.executable, "-m", f"tests.fuzz.{name}", "-runs=200", f"-artifact_prefix={tmp_path}/",
                           str(tmp_path), str(ROOT / "tests" / "fuzz" / "corpus" / name)],
                          capture_output=True, text=True, cwd=ROOT, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 200 runs" in done.stderr

"""Load on ``emvkit host serve``: authorisations per second and latency.

Starts ``emvkit host serve`` in its own process on loopback with a file
database, then for each number of concurrent terminals (default 8, 32, 64)
runs that many TCP connections from this process (asyncio), each sending
pre-built valid authorisation requests for ``--seconds`` after a one-second
warm-up that is not counted, in two passes:

- saturation: each terminal sends its next request as soon as it has the
  answer (closed loop, one request outstanding per terminal): the most the
  server can do. Latency here is queueing: with N terminals always waiting,
  mean latency = N / throughput (Little's law).
- offered load (``--rate``, default 2,000/s): the terminals together send
  that many requests per second, each at its own steady pace; latency is
  counted from the planned send time.

Prints authorisations/s, p50/p99/max latency and how busy the server
process was.

Every request is genuine: ARQCs are pre-computed with pyemv for cards under
three issuer keys (Visa CVN 18, Mastercard CVN 16, UnionPay), 16 cards per
terminal, each card's ATC counting up, so the replay window never declines
one. Building them happens before the clock starts, as does ISO 8583 encoding.

    .venv/bin/python bench/host_load.py [--clients 8,32,64] [--seconds 5] [--rate 2000] [--breakdown]
        [--synchronous full|normal] [--db postgresql://... [--servers N]] [--replay-storm]

The log is a SQLite file (``--synchronous``, FULL by default, as the host's
default) or, with ``--db postgresql://...``, a PostgreSQL database shared by
``--servers`` host processes (the terminals spread over them). With
``--replay-storm`` the bench then sends every ARQC of a fresh set to two host
processes at once (two processes are started when ``--servers`` is 1; with
SQLite that is impossible by design: one writer per file) and counts the
replayed ARQCs that were approved: the answer must be 0.

``--breakdown`` also times the server's stages in-process, along the path
``host serve`` takes (decode; decide: ARQC verification, ARPC, the rest;
the row's insert in the open batch; encode; the batch's COMMIT shared by
its 16 rows), to show where a request's time goes. Goal: at least
2,000 authorisations/s with p99 under 20 ms on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyemv import ac as pyemv_ac  # noqa: E402
from pyemv import cvn as pyemv_cvn  # noqa: E402
from pyemv import kd as pyemv_kd  # noqa: E402

from emvkit.terminal.host.api import AuthorisationRequest  # noqa: E402
from emvkit.terminal.host.iso8583 import decode_response, encode_request, frame  # noqa: E402
from emvkit.terminal.host.keys import IssuerKey, IssuerKeys  # noqa: E402
from emvkit.terminal.perso.cards import luhn_complete  # noqa: E402

CARDS_PER_TERMINAL = 16
WARMUP_S = 1.0
RATE_CEILING = 6000  # requests/s pre-built per level; a terminal that runs out stops early

_SERVE = ("import sys, emvkit.terminal.cli as c\n"
          "c.COMMANDS += [n for n in ('host',) if n not in c.COMMANDS]\n"
          "sys.exit(c.main(sys.argv[1:]))\n")

_TERMINAL = {0x9F03: bytes(6), 0x9F1A: bytes.fromhex("0250"), 0x95: bytes(5), 0x5F2A: bytes.fromhex("0978"),
             0x9A: bytes.fromhex("261127"), 0x9C: b"\x00"}
_AC_ORDER = (0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37)


class Card:
    """A synthetic card under one of the bench's issuer keys (pyemv computes its ARQCs)."""

    def __init__(self, key: IssuerKey, rng: random.Random) -> None:
        self.key = key
        self.pan = luhn_complete(key.bin_prefix + "".join(rng.choice("0123456789") for _ in range(9)))
        self.atc = 0
        self.scheme: Any = None
        imk = key.imk_ac
        if key.cryptogram_version == "visa_cvn18":
            self.scheme = pyemv_cvn.VisaCVN18(imk, imk, imk, self.pan, "01")
            self.aip, self.iad = bytes.fromhex("2000"), bytes.fromhex("06011203A00000")
        elif key.cryptogram_version == "mc_cvn16":
            self.scheme = pyemv_cvn.MasterCardCVN16(imk, imk, imk, self.pan, "01")
            self.aip, self.iad = bytes.fromhex("1980"), bytes.fromhex("0110A00000000000") + bytes(10)
        else:
            self.icc_mk = pyemv_kd.derive_icc_mk_a(imk, self.pan, "01")
            self.aip, self.iad = bytes.fromhex("7C00"), bytes.fromhex("07010103A0000001")

    def next_frame(self, stan: int, terminal_id: str) -> bytes:
        return frame(encode_request(self.next_request(stan, terminal_id)))

    def next_request(self, stan: int, terminal_id: str) -> AuthorisationRequest:
        """The card's next transaction (its ATC counts up) as an authorisation request."""
        self.atc += 1
        atc = self.atc.to_bytes(2, "big")
        amount = 100 + self.atc % 5000
        t = dict(_TERMINAL)
        t[0x9F02] = bytes.fromhex(f"{amount:012d}")
        t[0x9F37] = os.urandom(4)
        named = {f"tag_{tag:x}": t[tag] for tag in _AC_ORDER}
        if self.key.cryptogram_version == "visa_cvn18":
            arqc = self.scheme.generate_ac(**named, tag_82=self.aip, tag_9f36=atc, tag_9f10=self.iad)
        elif self.key.cryptogram_version == "mc_cvn16":
            arqc = self.scheme.generate_ac(**named, tag_82=self.aip, tag_9f36=atc, cvr=self.iad[2:8])
        else:
            data = b"".join(t[tag] for tag in _AC_ORDER) + self.aip + atc + self.iad
            sk = pyemv_kd.derive_common_sk(self.icc_mk, atc + bytes(6))
            arqc = pyemv_ac.generate_ac(sk, data)
        icc = {0x9F26: arqc, 0x9F27: b"\x80", 0x9F10: self.iad, 0x82: self.aip, 0x9F36: atc, **t}
        return AuthorisationRequest(pan=self.pan, amount=amount, currency=t[0x5F2A], icc_data=icc, psn="01",
                                    stan=stan, terminal_id=terminal_id)


def issuer_keys(rng: random.Random) -> IssuerKeys:
    return IssuerKeys([
        IssuerKey("476173", "visa", "visa_cvn18", rng.randbytes(16), "B"),
        IssuerKey("541333", "mastercard", "mc_cvn16", rng.randbytes(16), "A"),
        IssuerKey("621234", "unionpay", "upi", rng.randbytes(16), "A"),
    ])


def build_frames(keys: IssuerKeys, clients: int, seconds: float, rng: random.Random) -> list[list[bytes]]:
    """Per terminal: its requests, its cards taking turns."""
    key_list = list(keys)
    per_terminal = int(RATE_CEILING * (seconds + WARMUP_S) / clients) + 1
    out = []
    for n in range(clients):
        cards = [Card(key_list[i % len(key_list)], rng) for i in range(CARDS_PER_TERMINAL)]
        out.append([cards[i % len(cards)].next_frame(i % 1_000_000, f"T{n:07d}") for i in range(per_terminal)])
    return out


_DE_3_4_11 = (1 << 63 - 2) | (1 << 63 - 3) | (1 << 63 - 10)


def response_code(body: bytes) -> str:
    # DE 39 sits at a fixed offset when the fixed-length DE 3, 4 and 11 are
    # echoed (MTI 4 + bitmap 16 + 6 + 12 + 6): cheaper than a full decode,
    # which would take CPU from the server on a 2-core machine.
    if int(body[4:20], 16) & _DE_3_4_11 == _DE_3_4_11:
        return body[44:46].decode()
    return decode_response(body)[0].response_code


async def terminal(port: int, frames: list[bytes], start: float, stop: float, interval: float,
                   samples: list[float], codes: dict[str, int]) -> None:
    """One terminal: back to back (interval 0), or one request every
    ``interval`` seconds, latency then counted from the planned send time
    (so a slow answer also charges the requests it delayed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    planned = time.perf_counter() + random.random() * interval
    try:
        for message in frames:
            if interval:
                delay = planned - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            t0 = time.perf_counter()
            if t0 >= stop:
                break
            writer.write(message)
            header = await reader.readexactly(2)
            body = await reader.readexactly(int.from_bytes(header, "big"))
            t1 = time.perf_counter()
            sent = min(t0, planned) if interval else t0
            planned += interval
            if sent >= start:
                samples.append(t1 - sent)
                code = response_code(body)
                codes[code] = codes.get(code, 0) + 1
    finally:
        writer.close()


def server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_level(pids: list[int], ports: list[int], frames: list[list[bytes]], seconds: float,
              rate: float = 0.0) -> dict[str, float]:
    """One level: every terminal back to back, or together offering ``rate``
    requests/s; terminal n talks to the host on ``ports[n % len(ports)]``."""
    samples: list[float] = []
    codes: dict[str, int] = {}
    interval = len(frames) / rate if rate else 0.0

    async def main() -> None:
        now = time.perf_counter()
        start, stop = now + WARMUP_S, now + WARMUP_S + seconds
        await asyncio.gather(*(terminal(ports[n % len(ports)], f, start, stop, interval, samples, codes)
                               for n, f in enumerate(frames)))

    cpu0, wall0 = sum(server_cpu_s(p) for p in pids), time.perf_counter()
    asyncio.run(main())
    cpu_share = (sum(server_cpu_s(p) for p in pids) - cpu0) / (time.perf_counter() - wall0)
    samples.sort()
    n = len(samples)
    return {
        "requests": n,
        "rate": n / seconds,
        "p50": samples[n // 2] * 1000 if n else 0.0,
        "p99": samples[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "max": samples[-1] * 1000 if n else 0.0,
        "approved": codes.get("00", 0) / n * 100 if n else 0.0,
        "server_cpu": cpu_share * 100,
    }


def breakdown(keys: IssuerKeys, db: Path, synchronous: str, count: int = 6000, rows_per_commit: int = 16) -> None:
    """Time the server's stages in-process, per request, along the path
    ``host serve`` takes: decode, decide (ARQC verification, rules, ARPC),
    then per batch of ``rows_per_commit`` rows: BEGIN, each row's insert and
    answer encoding, COMMIT (the fsync, shared by the batch's rows)."""
    from emvkit.terminal.host import issuer as issuer_module
    from emvkit.terminal.host.authlog import AuthLog
    from emvkit.terminal.host.iso8583 import decode_request, encode_response
    from emvkit.terminal.host.issuer import IssuerHost

    rng = random.Random(7)
    frames = build_frames(keys, 8, count / RATE_CEILING, rng)
    messages = [f[2:] for per in frames for f in per][:count]
    host = IssuerHost(keys, log=AuthLog(db, synchronous=synchronous))
    crypto = {"arqc": 0.0, "arpc": 0.0}
    card_class: Any = issuer_module._Card

    def timed(name: str, method: Any) -> Any:
        def run(*args: Any) -> Any:
            t = time.perf_counter()
            try:
                return method(*args)
            finally:
                crypto[name] += time.perf_counter() - t
        return run

    originals = card_class.arqc, card_class.issuer_authentication_data
    card_class.arqc = timed("arqc", originals[0])
    card_class.issuer_authentication_data = timed("arpc", originals[1])
    stages = dict.fromkeys(["decode (pyiso8583 + DE 55 TLV)", "decide: ARQC verification (pyemv)",
                            "decide: ARPC (pyemv)", "decide: the rest (checks, replay window, rules)",
                            "insert (SQLite, in the open batch)", "encode (pyiso8583)",
                            f"commit (SQLite {synchronous.upper()}, 1/{rows_per_commit} of one)"], 0.0)
    names = list(stages)
    try:
        for first in range(0, len(messages), rows_per_commit):
            decided = []
            for message in messages[first:first + rows_per_commit]:
                t0 = time.perf_counter()
                request = decode_request(message)
                t1 = time.perf_counter()
                decided.append(host.decide(request, delivered=False))
                stages[names[0]] += t1 - t0
                stages[names[3]] += time.perf_counter() - t1
            t0 = time.perf_counter()
            host.log.begin()
            stages[names[6]] += time.perf_counter() - t0
            for d in decided:
                t1 = time.perf_counter()
                response = host.record(d)
                t2 = time.perf_counter()
                encode_response(response, d.request)
                stages[names[4]] += t2 - t1
                stages[names[5]] += time.perf_counter() - t2
            t3 = time.perf_counter()
            host.log.commit()
            stages[names[6]] += time.perf_counter() - t3
    finally:
        card_class.arqc, card_class.issuer_authentication_data = originals
        host.close()
    stages[names[1]], stages[names[2]] = crypto["arqc"], crypto["arpc"]
    stages[names[3]] -= crypto["arqc"] + crypto["arpc"]
    total = sum(stages.values())
    print(f"\nserver stages, in-process, {len(messages)} requests, {rows_per_commit} rows per commit "
          "(first touch of each card included):")
    for name, seconds in stages.items():
        print(f"  {name:<50} {seconds / len(messages) * 1e6:7.1f} us  {seconds / total * 100:5.1f} %")
    print(f"  {'total':<50} {total / len(messages) * 1e6:7.1f} us  -> at most {len(messages) / total:,.0f} "
          "authorisations/s on one core, before TCP")


async def _storm_pair(ports: tuple[int, int], frames: list[bytes], approvals: list[int]) -> None:
    """Each frame to both hosts at once; how many of the two approved it."""
    links = [await asyncio.open_connection("127.0.0.1", p) for p in ports]

    async def ask(link: tuple[asyncio.StreamReader, asyncio.StreamWriter], message: bytes) -> str:
        reader, writer = link
        writer.write(message)
        header = await reader.readexactly(2)
        return response_code(await reader.readexactly(int.from_bytes(header, "big")))

    try:
        for message in frames:
            codes = await asyncio.gather(*(ask(link, message) for link in links))
            approvals.append(codes.count("00"))
    finally:
        for _, writer in links:
            writer.close()


def replay_storm(keys: IssuerKeys, ports: list[int], rng: random.Random, pairs: int = 16,
                 per_pair: int = 250) -> None:
    frames = build_frames(keys, pairs, per_pair / RATE_CEILING, rng)
    frames = [f[:per_pair] for f in frames]
    approvals: list[int] = []

    async def main() -> None:
        await asyncio.gather(*(_storm_pair((ports[0], ports[1 + n % (len(ports) - 1)]), f, approvals)
                               for n, f in enumerate(frames)))

    t = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - t
    print(f"replay storm: {len(approvals):,} ARQCs, each sent to two host processes at once ({pairs} terminal "
          f"pairs, {elapsed:.1f} s): approved once {approvals.count(1):,}, approved twice (a replay approved) "
          f"{approvals.count(2):,}, approved by neither {approvals.count(0):,}")


def start_servers(count: int, db: str, key_file: Path, secret: Path, synchronous: str) -> list[tuple[Any, int]]:
    servers = []
    for _ in range(count):
        proc = subprocess.Popen([sys.executable, "-c", _SERVE, "host", "serve", "--port", "0", "--db", db,
                                 "--keys", str(key_file), "--secret", str(secret), "--synchronous", synchronous,
                                 "--max-connections", "1024"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise SystemExit("the server did not start")
        servers.append((proc, int(line.split("listening on tcp://", 1)[1].split()[0].rsplit(":", 1)[1])))
    return servers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--clients", default="8,32,64", help="concurrent terminals per level (default 8,32,64)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per level (default 5)")
    parser.add_argument("--rate", type=float, default=2000.0,
                        help="offered load of the second pass, requests/s (default 2000; 0 skips it)")
    parser.add_argument("--breakdown", action="store_true", help="also time the server's stages in-process")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full",
                        help="SQLite durability of the host (default full)")
    parser.add_argument("--db", help="a postgresql:// URL for the log (default: a SQLite file in a temp folder)")
    parser.add_argument("--servers", type=int, default=1, help="host processes on the PostgreSQL log (default 1)")
    parser.add_argument("--replay-storm", action="store_true",
                        help="then send every ARQC of a fresh set to two host processes at once (PostgreSQL)")
    args = parser.parse_args()
    if args.db is None and (args.servers != 1 or args.replay_storm):
        parser.error("--servers and --replay-storm need --db postgresql://... (one writer per SQLite file)")
    levels = [int(n) for n in args.clients.split(",")]
    rng = random.Random(2026)
    keys = issuer_keys(rng)
    with tempfile.TemporaryDirectory(prefix="emvkit-host-load-") as tmp:
        key_file, db = Path(tmp) / "keys.json", Path(tmp) / "host.sqlite"
        keys.save(key_file)
        t = time.perf_counter()
        runs = 2 if args.rate else 1
        work = {n: [build_frames(keys, n, args.seconds, rng) for _ in range(runs)] for n in levels}
        print(f"pre-built {sum(len(f) for w in work.values() for r in w for f in r):,} requests "
              f"in {time.perf_counter() - t:.1f} s (pyemv ARQCs, ISO 8583 encoding)")
        where = args.db or str(db)
        servers = start_servers(args.servers, where, key_file, Path(tmp) / "host.secret", args.synchronous)
        pids, ports = [p.pid for p, _ in servers], [port for _, port in servers]
        try:
            kind = (f"PostgreSQL, {args.servers} host process{'es' if args.servers > 1 else ''}" if args.db
                    else f"SQLite WAL, synchronous={args.synchronous.upper()}")
            print(f"server: pids {pids}, ports {ports}, log: {kind}, {os.cpu_count()} CPUs\n")
            header = (f"{'terminals':>9} {'requests':>9} {'auth/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
                      f"{'approved':>8} {'server CPU':>10}")
            modes = [("saturation: every terminal sends its next request as soon as it has an answer", 0.0)]
            if args.rate:
                modes.append((f"offered load: the terminals together send {args.rate:,.0f} requests/s", args.rate))
            for title, rate in modes:
                print(f"{title}\n{header}")
                for n in levels:
                    r = run_level(pids, ports, work[n].pop(), args.seconds, rate)
                    print(f"{n:>9} {r['requests']:>9,.0f} {r['rate']:>8,.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} "
                          f"{r['max']:>7.2f} {r['approved']:>7.1f}% {r['server_cpu']:>9.0f}%", flush=True)
                print()
            if args.replay_storm:
                if len(servers) == 1:
                    servers += start_servers(1, where, key_file, Path(tmp) / "host.secret", args.synchronous)
                replay_storm(keys, [port for _, port in servers], rng)
        finally:
            for proc, _ in servers:
                proc.terminate()
                proc.wait(10)
        if args.breakdown:
            breakdown(keys, Path(tmp) / "breakdown.sqlite", args.synchronous)
    print("\ngoal: >= 2,000 authorisations/s with p99 < 20 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

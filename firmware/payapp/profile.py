# Card profiles: the JSON document a card is personalised from, parsed into
# the structures the card application serves.
#
# A profile is {"format": "emvkit-card", "version": 1, "id", "applications":
# [...], "secrets": {...}}; docs/card-profile.md describes every field. Data
# elements are lists of [tag hex, value hex] pairs so their order survives
# any JSON parser. Public data and secrets live apart: a profile without
# "secrets" can be shared; the card refuses to run without it.

from .. import tlv
from ..crypto.emv import CRYPTOGRAM_VERSIONS
from ..crypto.rsa import RSAPrivateKey
from .state import CardState, StateError

FORMAT = "emvkit-card"
SCHEMES = ("visa", "mastercard", "unionpay")


class ProfileError(ValueError):
    pass


def _hex(value, where: str, index: int = -1, part: str = "") -> bytes:
    # where[index] part: the field named in an error (put together only then:
    # on a small heap, garbage made for every pair leaves it in pieces).
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            problem = "not hex"
    else:
        problem = "expected a hex string"
    if index >= 0:
        where = "%s[%d] %s" % (where, index, part)
    raise ProfileError("%s: %s" % (where, problem))


def _pairs(items, where: str) -> list:
    # [[tag hex, value hex], ...] -> [(tag int, value bytes), ...]
    if items is None:
        return []
    if not isinstance(items, list):
        raise ProfileError("%s: expected a list of [tag, value] pairs" % where)
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, list) or len(item) != 2:
            raise ProfileError("%s[%d]: expected [tag, value]" % (where, i))
        tag = _hex(item[0], where, i, "tag")
        if not tag:
            raise ProfileError("%s[%d]: empty tag" % (where, i))
        out.append((int.from_bytes(tag, "big"), _hex(item[1], where, i, "value")))
    return out


def _encode_pairs(pairs: list) -> bytes:
    return b"".join([tlv.encode_tlv(t, v) for t, v in pairs])


def _int(doc: dict, key: str, where: str, default=None) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProfileError("%s.%s: expected an integer" % (where, key))
    return value


class Record:
    def __init__(self, sfi: int, number: int, oda: bool, content: bytes, template: int = 0x70) -> None:
        self.sfi = sfi
        self.number = number
        self.oda = oda
        self.content = content  # the data objects inside the template
        # The tag READ RECORD wraps them in: 70 (EMV Book 3 §5.3); 0 for none.
        # Another one is for test cards breaking the tag-70 rule of §10.3.
        self.template = template

    def __eq__(self, other) -> bool:
        return isinstance(other, Record) and self.sfi == other.sfi and self.number == other.number \
            and self.oda == other.oda and self.content == other.content and self.template == other.template


class Application:
    def __init__(self, doc: dict, index: int) -> None:
        where = "applications[%d]" % index
        if not isinstance(doc, dict):
            raise ProfileError("%s: expected an object" % where)
        self.aid = _hex(doc.get("aid"), where + ".aid")
        if not 5 <= len(self.aid) <= 16:
            raise ProfileError("%s.aid: an AID is 5 to 16 bytes" % where)
        self.label = doc.get("label", "")
        self.priority = _int(doc, "priority", where, 1)
        self.kernel = _int(doc, "kernel", where)
        self.scheme = doc.get("scheme")
        if self.scheme not in SCHEMES:
            raise ProfileError("%s.scheme: one of %s" % (where, ", ".join(SCHEMES)))
        version = doc.get("cryptogram_version")
        if not isinstance(version, str) or version not in CRYPTOGRAM_VERSIONS:
            raise ProfileError("%s.cryptogram_version: one of %s"
                               % (where, ", ".join(sorted(CRYPTOGRAM_VERSIONS))))
        self.cryptogram_version = version
        if version == "upi_sm4" and self.scheme != "unionpay":
            raise ProfileError("%s.cryptogram_version: upi_sm4 (the SM suite) is UnionPay's" % where)
        # The SM suite (PBOC 3.0): SM4 cryptograms and SM2/SM3 fDDA, used
        # when the terminal says it supports SM (DF69 01 in the PDOL data).
        self.sm = self.cryptogram_version == "upi_sm4"
        self.cvn = _int(doc, "cvn", where)
        self.dki = _int(doc, "dki", where, 1)
        self.pdol = _hex(doc.get("pdol", ""), where + ".pdol")
        self.cdol1 = _hex(doc.get("cdol1", ""), where + ".cdol1")
        self.cdol2 = _hex(doc.get("cdol2", ""), where + ".cdol2")
        self.ddol = _hex(doc.get("ddol", ""), where + ".ddol")
        for name in ("pdol", "cdol1", "cdol2", "ddol"):
            try:
                tlv.parse_dol(getattr(self, name))
            except tlv.TLVError as exc:
                raise ProfileError("%s.%s: %s" % (where, name, exc))
        if self.sm and 0xDF69 not in [t for t, _ in tlv.parse_dol(self.pdol)]:
            raise ProfileError("%s.pdol: an SM card asks for the SM Algorithm Support Indicator (DF69)" % where)
        self.aip = _hex(doc.get("aip"), where + ".aip")
        if len(self.aip) != 2:
            raise ProfileError("%s.aip: 2 bytes" % where)
        self.fci = _pairs(doc.get("fci"), where + ".fci")
        self.fci_discretionary = _pairs(doc.get("fci_discretionary"), where + ".fci_discretionary")
        self.data = dict(_pairs(doc.get("data"), where + ".data"))
        self.fdda_version = _int(doc, "fdda_version", where, 1)
        risk = doc.get("risk", {})
        if not isinstance(risk, dict):
            raise ProfileError("%s.risk: expected an object" % where)
        self.lcol = _int(risk, "lower_consecutive_offline_limit", where + ".risk", 0)
        self.ucol = _int(risk, "upper_consecutive_offline_limit", where + ".risk", 0)
        self.offline_limit = _int(risk, "single_offline_limit", where + ".risk", 0)
        self.cumulative_limit = _int(risk, "cumulative_offline_limit", where + ".risk", 0)
        self.upper_cumulative_limit = _int(risk, "upper_cumulative_offline_limit", where + ".risk", 0)
        cdcvm = doc.get("cdcvm")
        self.cdcvm_window = None if cdcvm is None else _int(cdcvm, "window_s", where + ".cdcvm")
        log = doc.get("log")
        self.log_sfi = 0
        self.log_records = 0
        self.log_format = b""
        if log is not None:
            self.log_sfi = _int(log, "sfi", where + ".log")
            self.log_records = _int(log, "records", where + ".log")
            self.log_format = _hex(log.get("format"), where + ".log.format")
        self.records = {}
        order = []
        for i, rec in enumerate(doc.get("records", [])):
            rwhere = "%s.records[%d]" % (where, i)
            sfi = _int(rec, "sfi", rwhere)
            number = _int(rec, "record", rwhere)
            if not 1 <= sfi <= 30 or not 1 <= number <= 255:
                raise ProfileError("%s: SFI 1..30 and record 1..255" % rwhere)
            if sfi == self.log_sfi:
                raise ProfileError("%s: SFI %d is the log file" % (rwhere, sfi))
            content = _encode_pairs(_pairs(rec.get("data"), rwhere + ".data"))
            template = _hex(rec.get("template", "70"), rwhere + ".template")
            if len(template) > 1:
                raise ProfileError("%s.template: one byte, or empty for none" % rwhere)
            self.records[(sfi, number)] = Record(sfi, number, bool(rec.get("oda", False)), content,
                                                 template[0] if template else 0)
            order.append((sfi, number))
        self.afl = _build_afl(order, self.records)

    def find(self, tag: int) -> "bytes | None":
        # A data element the card holds: personalised data, then records.
        if tag in self.data:
            return self.data[tag]
        for rec in self.records.values():
            for node in tlv.decode(rec.content):
                if node.tag == tag:
                    return node.value
        return None


def _build_afl(order: list, records: dict) -> bytes:
    # Application File Locator (EMV Book 3 §10.2): one 4-byte entry per run
    # of consecutive records in one SFI; records flagged "oda" must come
    # first in their run.
    afl = bytearray()
    i = 0
    while i < len(order):
        sfi, first = order[i]
        last = first
        oda = 1 if records[(sfi, first)].oda else 0
        seen_plain = not records[(sfi, first)].oda
        i += 1
        while i < len(order) and order[i][0] == sfi and order[i][1] == last + 1:
            rec = records[order[i]]
            if rec.oda:
                if seen_plain:
                    raise ProfileError("SFI %d record %d: ODA records must precede the others"
                                       % (sfi, rec.number))
                oda += 1
            else:
                seen_plain = True
            last += 1
            i += 1
        afl.extend(bytes((sfi << 3, first, last, oda)))
    return bytes(afl)


class Secrets:
    def __init__(self, doc: dict) -> None:
        if not isinstance(doc, dict):
            raise ProfileError("secrets: expected an object")
        self.pan = doc.get("pan")
        if not isinstance(self.pan, str) or not self.pan.isdigit():
            raise ProfileError("secrets.pan: digits")
        self.psn = doc.get("psn", "00")
        self.icc_mk_ac = _hex(doc.get("icc_mk_ac"), "secrets.icc_mk_ac")
        if len(self.icc_mk_ac) != 16:
            raise ProfileError("secrets.icc_mk_ac: 16 bytes")
        # ICC master key for secure messaging integrity (issuer script MACs,
        # Book 2 §9.2); without it the card takes no script command.
        smi = doc.get("icc_mk_smi")
        self.icc_mk_smi = None if smi is None else _hex(smi, "secrets.icc_mk_smi")
        if self.icc_mk_smi is not None and len(self.icc_mk_smi) != 16:
            raise ProfileError("secrets.icc_mk_smi: 16 bytes")
        # ICC SM2 key pair (PBOC 3.0 SM suite: fDDA signed with SM2 over SM3).
        sm2 = doc.get("icc_sm2")
        self.icc_sm2 = None
        if sm2 is not None:
            from ..crypto.sm2 import SM2PrivateKey  # imported only by SM cards (heap on device images)
            try:
                self.icc_sm2 = SM2PrivateKey.from_dict(sm2)
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                raise ProfileError("secrets.icc_sm2: %s" % exc)
        rsa = doc.get("icc_rsa")
        self.icc_key = None
        if rsa is not None:
            try:
                self.icc_key = RSAPrivateKey.from_dict(rsa)
            except (KeyError, ValueError, TypeError) as exc:
                raise ProfileError("secrets.icc_rsa: %s" % exc)


# What applications of one card may share: an attribute equal to an earlier
# application's is that very object (nothing here is changed after parsing).
_SHARED = ("fci", "fci_discretionary", "data", "records", "afl", "pdol", "cdol1", "cdol2", "ddol", "aip",
           "log_format")


class Profile:
    # release: the document is the caller's no longer; each application's
    # part and the secrets are dropped from it once parsed, so that on a
    # small heap the parsed document and the profile are never both whole.
    # parts: (key, index) -> that part of the document ("applications", i;
    # "secrets", 0), parsed when it is needed (the token reads each from its
    # store in turn, and `doc` holds 0 in its place); None: all in `doc`.
    def __init__(self, doc: dict, release: bool = False, parts=None) -> None:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ProfileError("not an %s profile" % FORMAT)
        if doc.get("version") != 1:
            raise ProfileError("unsupported profile version %r" % doc.get("version"))
        self.id = doc.get("id", "card")
        apps = doc.get("applications")
        if not isinstance(apps, list) or not apps:
            raise ProfileError("applications: at least one")
        self.applications = []  # type: list[Application]
        for i in range(len(apps)):
            app = Application(apps[i] if parts is None else parts("applications", i), i)
            if release:
                apps[i] = None
            for earlier in self.applications:
                for name in _SHARED:
                    mine = getattr(app, name)
                    if mine is not getattr(earlier, name) and mine == getattr(earlier, name):
                        setattr(app, name, getattr(earlier, name))
            self.applications.append(app)
        self.atr_historical = _hex(doc.get("atr_historical", ""), "atr_historical")
        secrets = doc.get("secrets")
        if parts is not None and secrets == 0:
            secrets = parts("secrets", 0)
        if release and secrets is not None:
            doc["secrets"] = None
        self.secrets = None if secrets is None else Secrets(secrets)
        secrets = None
        state = doc.get("state", {})
        try:
            CardState.from_dict(state, "state")  # every field checked here, once
        except StateError as exc:
            raise ProfileError(str(exc))
        self.initial_state = state

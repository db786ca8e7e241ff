"""C2SP signed notes and tlog checkpoints, as Go's golang.org/x/mod/sumdb/note
reads and writes them.

The known-answer tests reproduce the example in the package documentation of
golang.org/x/mod/sumdb/note (sumdb/note/note.go): the verifier key, the signer
key and the signed note printed there. Our parser accepts Go's verifier key,
our open_note verifies Go's note, and signing Go's text with Go's key gives
Go's bytes exactly (Ed25519 is deterministic): compatibility with the stock
tooling, shown without running Go.
"""
from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import example, given, settings
from hypothesis import strategies as st

from voucher_service.ledger.note import (
    Checkpoint,
    NoteError,
    Verifier,
    key_hash,
    open_note,
    parse_note,
    sign_note,
    verifier_key,
)
from voucher_service.ledger.signing import public_raw

ORIGIN = "vouchers.example/ledger"
REGIONS = ("SH", "KS", "WJ")
EM_DASH = "\u2014"


class NoteKey:
    def __init__(self, name: str, seed_label: bytes):
        self.name = name
        self.private_key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed_label).digest())
        self.public_key_raw = public_raw(self.private_key.public_key())

    @property
    def signer(self):
        return (self.name, self.private_key.sign, self.public_key_raw)

    @property
    def verifier(self) -> Verifier:
        return Verifier.parse(verifier_key(self.name, self.public_key_raw))


KEYS = {region: NoteKey(f"{ORIGIN}/{region}", b"test-note/" + region.encode()) for region in REGIONS}
ROOT = hashlib.sha256(b"some root").digest()
CHECKPOINT = Checkpoint(ORIGIN, 1234, ROOT)


def cosigned(checkpoint: Checkpoint = CHECKPOINT, keys=None) -> str:
    return sign_note(checkpoint.text(), [k.signer for k in (keys or KEYS.values())])


# --- Go's documented example (golang.org/x/mod/sumdb/note, note.go) ----------------

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
GO_NOTE = (GO_TEXT + "\n"
           "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
# The same note re-signed by a second key, "EnochRoot", whose verifier key the
# documentation does not give: an unknown signer to be ignored.
GO_NOTE_TWO_SIGNERS = (GO_NOTE +
                       "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n")


def go_signing_key() -> Ed25519PrivateKey:
    # "PRIVATE+KEY+<name>+<hash>+<base64(0x01 || 32-byte Ed25519 seed)>"
    private, key, name, hash_hex, key_b64 = GO_SKEY.split("+", 4)
    assert (private, key, name, hash_hex) == ("PRIVATE", "KEY", "PeterNeumann", "c74f20a3")
    raw = base64.b64decode(key_b64)
    assert raw[0] == 0x01 and len(raw) == 33
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_go_example_verifier_key_is_accepted():
    verifier = Verifier.parse(GO_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.key_hash.hex() == "c74f20a3"
    assert verifier.public_key_raw == base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")[1:]


def test_go_example_note_verifies():
    text, good = open_note(GO_NOTE, [Verifier.parse(GO_VKEY)])
    assert text == GO_TEXT
    assert [v.name for v in good] == ["PeterNeumann"]
    text, signatures = parse_note(GO_NOTE)
    assert [(s.name, s.key_hash.hex()) for s in signatures] == [("PeterNeumann", "c74f20a3")]


def test_go_example_with_an_unknown_cosigner_verifies_by_the_known_key():
    text, good = open_note(GO_NOTE_TWO_SIGNERS, [Verifier.parse(GO_VKEY)])
    assert text == GO_TEXT and [v.name for v in good] == ["PeterNeumann"]
    assert [s.name for s in parse_note(GO_NOTE_TWO_SIGNERS)[1]] == ["PeterNeumann", "EnochRoot"]


def test_go_example_is_reproduced_byte_for_byte_from_gos_private_key():
    private_key = go_signing_key()
    public = public_raw(private_key.public_key())
    assert verifier_key("PeterNeumann", public) == GO_VKEY
    assert sign_note(GO_TEXT, [("PeterNeumann", private_key.sign, public)]) == GO_NOTE


def test_go_example_tampered_is_rejected():
    verifier = Verifier.parse(GO_VKEY)
    with pytest.raises(NoteError):
        open_note(GO_NOTE.replace("problem is.", "problem is!"), [verifier])
    with pytest.raises(NoteError):
        open_note(GO_NOTE, [KEYS["SH"].verifier])  # no known signer


# --- round trips with the regions' keys ------------------------------------------------

def test_checkpoint_cosigned_by_three_regions_round_trips():
    note = cosigned()
    text, good = open_note(note, [k.verifier for k in KEYS.values()])
    assert Checkpoint.parse(text) == CHECKPOINT
    assert [v.name for v in good] == [f"{ORIGIN}/{r}" for r in REGIONS]
    assert text == f"{ORIGIN}\n1234\n{base64.b64encode(ROOT).decode()}\n"
    lines = note.split("\n")
    assert lines[3] == "" and all(line.startswith(f"{EM_DASH} {ORIGIN}/") for line in lines[4:-1])
    assert note.endswith("\n") and lines[-1] == ""


def test_one_known_region_is_enough_and_the_others_are_ignored():
    text, good = open_note(cosigned(), [KEYS["KS"].verifier])
    assert Checkpoint.parse(text) == CHECKPOINT and good == [KEYS["KS"].verifier]


def test_checkpoint_of_an_empty_tree():
    empty = Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest())
    text, _good = open_note(cosigned(empty), [KEYS["SH"].verifier])
    assert Checkpoint.parse(text) == empty and text.split("\n")[1] == "0"


def test_checkpoint_extension_lines_are_allowed():
    # c2sp.org/tlog-checkpoint: optional extension lines follow the root hash.
    text = CHECKPOINT.text() + "extension line\n"
    assert Checkpoint.parse(text) == CHECKPOINT


# --- verifier keys ------------------------------------------------------------------------

def test_verifier_key_format():
    key = KEYS["KS"]
    vkey = verifier_key(key.name, key.public_key_raw)
    match = re.fullmatch(r"(?P<name>[^+\s]+)\+(?P<hash>[0-9a-f]{8})\+(?P<key>[A-Za-z0-9+/]+=*)", vkey)
    assert match and match["name"] == key.name
    encoded = base64.b64decode(match["key"], validate=True)
    assert encoded == b"\x01" + key.public_key_raw
    expected_hash = hashlib.sha256(key.name.encode() + b"\n" + b"\x01" + key.public_key_raw).digest()[:4]
    assert match["hash"] == expected_hash.hex() == key_hash(key.name, key.public_key_raw).hex()
    parsed = Verifier.parse(vkey)
    assert (parsed.name, parsed.key_hash, parsed.public_key_raw) == (key.name, expected_hash, key.public_key_raw)


def _vkey_parts(name: str, public: bytes, alg: int = 1) -> tuple[str, str]:
    encoded = bytes([alg]) + public
    digest = hashlib.sha256(name.encode() + b"\n" + encoded).digest()[:4]
    return digest.hex(), base64.b64encode(encoded).decode()


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda n, h, k: f"{n}+{h[:-1]}{'0' if h[-1] != '0' else '1'}+{k}", id="wrong hash"),
    pytest.param(lambda n, h, k: f"{n}+{h[:7]}+{k}", id="7 hex digits"),
    pytest.param(lambda n, h, k: f"{n}+{h}0+{k}", id="9 hex digits"),
    pytest.param(lambda n, h, k: f"{n}+zz{h[2:]}+{k}", id="non-hex hash"),
    pytest.param(lambda n, h, k: f"{n}+{h}+{k[:-4]}", id="key truncated"),
    pytest.param(lambda n, h, k: f"{n}+{h}+{k}AAAA", id="key too long"),
    pytest.param(lambda n, h, k: f"{n}+{h}+{k[:-1]}", id="bad base64"),
    pytest.param(lambda n, h, k: f"{n}+{h}", id="two fields"),
    pytest.param(lambda n, h, k: f"+{h}+{k}", id="empty name"),
    pytest.param(lambda n, h, k: f"bad name+{h}+{k}", id="space in name"),
    pytest.param(lambda n, h, k: f"bad\tname+{h}+{k}", id="tab in name"),
    pytest.param(lambda n, h, k: f"bad\u3000name+{h}+{k}", id="ideographic space in name"),
    pytest.param(lambda n, h, k: f"a+b+{h}+{k}", id="plus in name"),
    pytest.param(lambda n, h, k: "", id="empty"),
])
def test_verifier_parse_rejects(mutate):
    key = KEYS["SH"]
    hash_hex, key_b64 = _vkey_parts(key.name, key.public_key_raw)
    assert Verifier.parse(f"{key.name}+{hash_hex}+{key_b64}") == key.verifier
    with pytest.raises(NoteError):
        Verifier.parse(mutate(key.name, hash_hex, key_b64))


def test_verifier_parse_rejects_another_algorithm_even_with_a_matching_hash():
    key = KEYS["SH"]
    hash_hex, key_b64 = _vkey_parts(key.name, key.public_key_raw, alg=2)
    with pytest.raises(NoteError):
        Verifier.parse(f"{key.name}+{hash_hex}+{key_b64}")


def test_verifier_parse_rejects_whitespace_inside_the_hash():
    with pytest.raises(NoteError):
        Verifier.parse("PeterNeumann+c7 4f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there", "new\nline"])
def test_verifier_key_and_sign_note_refuse_bad_names(name):
    key = KEYS["SH"]
    with pytest.raises(NoteError):
        verifier_key(name, key.public_key_raw)
    with pytest.raises(NoteError):
        sign_note(CHECKPOINT.text(), [(name, key.private_key.sign, key.public_key_raw)])


# --- opening notes ------------------------------------------------------------------------

ALL_VERIFIERS = [k.verifier for k in KEYS.values()]


def test_tampered_text_is_rejected():
    note = cosigned()
    for tampered in (note.replace("\n1234\n", "\n1235\n"), note.replace(ORIGIN + "\n", "evil.example/ledger\n", 1)):
        assert tampered != note
        with pytest.raises(NoteError):
            open_note(tampered, ALL_VERIFIERS)
        with pytest.raises(NoteError):
            open_note(tampered, [KEYS["WJ"].verifier])


def _retouch_signature(note: str, line_index: int, change) -> str:
    text, _, block = note.partition("\n\n")
    lines = block.split("\n")
    prefix, _, blob = lines[line_index].rpartition(" ")
    lines[line_index] = f"{prefix} {base64.b64encode(change(base64.b64decode(blob))).decode()}"
    return text + "\n\n" + "\n".join(lines)


@pytest.mark.parametrize("byte", [4, 30, 67])
def test_tampered_signature_is_rejected(byte):
    def flip(raw):
        raw = bytearray(raw)
        raw[byte] ^= 0x01
        return bytes(raw)
    bad = _retouch_signature(cosigned(), 1, flip)  # the second signer, KS
    with pytest.raises(NoteError):
        open_note(bad, ALL_VERIFIERS)
    with pytest.raises(NoteError):
        open_note(bad, [KEYS["KS"].verifier])
    # Go's note.Open ignores signatures by keys it does not know: so do we.
    text, good = open_note(bad, [KEYS["SH"].verifier])
    assert good == [KEYS["SH"].verifier]


def test_signature_with_a_wrong_key_hash_is_an_unknown_signer():
    def rehash(raw):
        return bytes([raw[0] ^ 0xFF]) + raw[1:]
    bad = sign_note(CHECKPOINT.text(), [KEYS["SH"].signer])
    bad = _retouch_signature(bad, 0, rehash)
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(bad, ALL_VERIFIERS)


def test_note_with_no_known_signer_is_rejected():
    stranger = NoteKey(f"{ORIGIN}/XX", b"test-note/stranger")
    with pytest.raises(NoteError):
        open_note(cosigned(), [stranger.verifier])
    with pytest.raises(NoteError):
        open_note(cosigned(), [])
    # Same name as a region's key but another key: also unknown.
    impostor = NoteKey(KEYS["SH"].name, b"test-note/impostor")
    with pytest.raises(NoteError):
        open_note(cosigned(), [impostor.verifier])
    with pytest.raises(NoteError):
        open_note(sign_note(CHECKPOINT.text(), [impostor.signer]), [KEYS["SH"].verifier])


@pytest.mark.parametrize("note", [
    "",
    "no blank line\n\u2014 a AAAA\n",
    CHECKPOINT.text() + "\n",  # no signatures
    CHECKPOINT.text() + "\n\u2014 a b c\n",
    CHECKPOINT.text() + "\n- a " + base64.b64encode(bytes(68)).decode() + "\n",  # hyphen, not em dash
    CHECKPOINT.text() + "\n\u2014 a " + base64.b64encode(bytes(68)).decode(),  # no final newline
    CHECKPOINT.text() + "\n\u2014 a " + base64.b64encode(bytes(68)).decode() + "\n\n",
    CHECKPOINT.text() + "\n\u2014 a not*base64\n",
    CHECKPOINT.text() + "\n\u2014 a " + base64.b64encode(bytes(4)).decode() + "\n",
])
def test_malformed_notes_are_rejected(note):
    with pytest.raises(NoteError):
        parse_note(note)
    with pytest.raises(NoteError):
        open_note(note, ALL_VERIFIERS)


def test_sign_note_requires_a_final_newline():
    with pytest.raises(NoteError):
        sign_note(CHECKPOINT.text().rstrip("\n"), [KEYS["SH"].signer])


@pytest.mark.parametrize("note", ["\ud800\n\n\u2014 a AAAAAAA=\n", CHECKPOINT.text() + "\n\u2014 \udfff AAAAAAA=\n"])
def test_lone_surrogates_are_a_note_error(note):
    with pytest.raises(NoteError):
        parse_note(note)


def test_control_characters_are_refused_as_go_does():
    note = sign_note("tab\there\n", [KEYS["SH"].signer])
    with pytest.raises(NoteError):
        open_note(note, ALL_VERIFIERS)


def test_an_unknown_cosignature_of_another_type_is_ignored():
    # A C2SP tlog-cosignature (key hash, 8-byte timestamp, signature: 76 bytes)
    # by a witness we do not know: Go's note.Open ignores it, and so do we.
    witness = f"\u2014 witness.example/w1 {base64.b64encode(bytes(76)).decode()}\n"
    text, good = open_note(cosigned() + witness, [KEYS["SH"].verifier])
    assert good == [KEYS["SH"].verifier] and Checkpoint.parse(text) == CHECKPOINT


def test_a_known_key_with_a_signature_of_the_wrong_length_is_rejected():
    def lengthen(raw):
        return raw + b"\x00"
    bad = _retouch_signature(sign_note(CHECKPOINT.text(), [KEYS["SH"].signer]), 0, lengthen)
    with pytest.raises(NoteError):
        open_note(bad, ALL_VERIFIERS)


def test_a_repeated_signature_by_one_key_counts_once():
    note = cosigned(keys=[KEYS["SH"]])
    signature_line = note.split("\n\n")[1]
    text, good = open_note(note + signature_line, ALL_VERIFIERS)
    assert good == [KEYS["SH"].verifier]


# --- checkpoints ------------------------------------------------------------------------------

GOOD_ROOT = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize("text", [
    "",
    "\n",
    f"{ORIGIN}\n",
    f"{ORIGIN}\n5\n",
    f"{ORIGIN}\n5\n{GOOD_ROOT}",  # no final newline
    f"\n5\n{GOOD_ROOT}\n",  # empty origin
    f"{ORIGIN}\nfive\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n-1\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n+1\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n0x10\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n 5\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n5 \n{GOOD_ROOT}\n",
    f"{ORIGIN}\n1_000\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n1e3\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n05\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n00\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n{'9' * 21}\n{GOOD_ROOT}\n",
    f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n",
    f"{ORIGIN}\n5\n{base64.b64encode(ROOT + b'x').decode()}\n",
    f"{ORIGIN}\n5\n{GOOD_ROOT[:-1]}\n",
    f"{ORIGIN}\n5\n{ROOT.hex()}\n",
    f"{ORIGIN}\n5\n\n",
])
def test_checkpoint_parse_rejects(text):
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


@pytest.mark.parametrize("size", ["\u0661", "\u00b2", "\uff15", "\u0665\u0665"])
def test_checkpoint_size_is_ascii_decimal(size):
    with pytest.raises(NoteError):
        Checkpoint.parse(f"{ORIGIN}\n{size}\n{GOOD_ROOT}\n")


# --- fuzzing: NoteError and nothing else ---------------------------------------------------------

# Lone surrogates and non-ASCII digits are in the alphabet on purpose: they
# once escaped parse_note and Checkpoint.parse as other exceptions.
FUZZ_CHARACTERS = st.one_of(
    st.characters(),
    st.sampled_from(["\n", "\u2014", " ", "+", "=", "/", "A", "0", "1", "\t", "\x00", "\u00b2", "\u0661"]),
)
FUZZ_TEXT = st.text(alphabet=FUZZ_CHARACTERS, max_size=300)


@st.composite
def almost_notes(draw):
    """Text shaped like a signed note, with parts of it garbled."""
    key = draw(st.sampled_from(list(KEYS.values())))
    note = cosigned(Checkpoint(ORIGIN, draw(st.integers(0, 10**6)), ROOT), [key])
    if draw(st.booleans()):
        at = draw(st.integers(0, len(note)))
        note = note[:at] + draw(FUZZ_TEXT) + note[at + draw(st.integers(0, 8)):]
    return note


@st.composite
def almost_checkpoints(draw):
    lines = [draw(st.one_of(st.just(ORIGIN), FUZZ_TEXT)),
             draw(st.one_of(st.integers(0, 2**64).map(str), FUZZ_TEXT)),
             draw(st.one_of(st.binary(min_size=30, max_size=34).map(lambda b: base64.b64encode(b).decode()),
                            FUZZ_TEXT))]
    lines += draw(st.lists(FUZZ_TEXT, max_size=2))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@st.composite
def almost_verifier_keys(draw):
    key = draw(st.sampled_from(list(KEYS.values())))
    vkey = verifier_key(key.name, key.public_key_raw)
    at = draw(st.integers(0, len(vkey)))
    return vkey[:at] + draw(FUZZ_TEXT) + vkey[at + draw(st.integers(0, 8)):]


def only_note_errors(function, *args):
    try:
        function(*args)
    except NoteError:
        pass  # anything else propagates and fails the test


@settings(max_examples=200)
@given(st.one_of(FUZZ_TEXT, almost_notes()))
@example(GO_NOTE)
@example("\n\n")
@example("x\n\n\u2014 \n")
@example("x\n\n\u2014  \n")
def test_parse_and_open_note_raise_only_note_errors(text):
    only_note_errors(parse_note, text)
    only_note_errors(open_note, text, ALL_VERIFIERS)
    only_note_errors(open_note, text, [Verifier.parse(GO_VKEY)])


@settings(max_examples=200)
@given(st.one_of(FUZZ_TEXT, almost_checkpoints()))
@example(f"{ORIGIN}\n18446744073709551616\n{GOOD_ROOT}\n")
def test_checkpoint_parse_raises_only_note_errors(text):
    only_note_errors(Checkpoint.parse, text)


@settings(max_examples=200)
@given(st.one_of(FUZZ_TEXT, almost_verifier_keys()))
@example("a+b+c")
@example("a+0000000+AQ==")
@example("a++")
def test_verifier_parse_raises_only_note_errors(text):
    only_note_errors(Verifier.parse, text)

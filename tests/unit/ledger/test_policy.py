"""Verification policies (ledger/policy.py): parsing, with errors that name the
line, and evaluation against checkpoints signed and cosigned by real keys."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voucher_service.ledger import SigningKey, merkle
from voucher_service.ledger.cosignature import add_signature_lines, cosign, vkey
from voucher_service.ledger.note import Checkpoint, sign_note, verifier_key
from voucher_service.ledger.policy import MAX_POLICY_BYTES, Policy, PolicyError

ORIGIN = "vouchers.test/ledger"
ROOT = merkle.root_from_leaves([merkle.leaf_hash(b"entry %d" % n) for n in range(5)])
TEXT = Checkpoint(ORIGIN, 5, ROOT).text()
OTHER_TEXT = Checkpoint(ORIGIN, 4, ROOT).text()


class Witness:
    def __init__(self, name: str):
        self.name = name
        self.key = SigningKey.generate("w")

    @property
    def vkey(self) -> str:
        return vkey(self.name, self.key.public_key_raw)

    def cosign(self, note: str, *, over: str | None = None, timestamp: int = 1_780_000_000) -> str:
        text = note[:note.index("\n\n") + 1]
        return add_signature_lines(note, cosign(over or text, self.name, self.key.sign, self.key.public_key_raw,
                                                timestamp))


LOG = SigningKey.generate("log")
LOG_VKEY = verifier_key(ORIGIN, LOG.public_key_raw)
W = {name: Witness(f"witness.{name}.test") for name in ("sh", "ks", "wj", "ext", "stranger")}


def log_signed(text: str = TEXT, key: SigningKey = LOG, name: str = ORIGIN) -> str:
    return sign_note(text, [(name, key.sign, key.public_key_raw)])


def cosigned(*names: str, note: str | None = None) -> str:
    note = note or log_signed()
    for name in names:
        note = W[name].cosign(note)
    return note


def policy(*body: str, witnesses=("sh", "ks", "wj", "ext")) -> Policy:
    lines = [f"log {LOG_VKEY}"] + [f"witness {n} {W[n].vkey}" for n in witnesses] + list(body)
    return Policy.parse("\n".join(lines) + "\n")


def refused(p: Policy, note: str) -> str:
    with pytest.raises(PolicyError) as info:
        p.check(note)
    return str(info.value)


# --- parsing ----------------------------------------------------------------------------------

def test_a_full_policy_parses_with_comments_blank_lines_tabs_and_urls():
    text = (f"# the voucher ledger's witnesses\n\nlog {LOG_VKEY} http://127.0.0.1:8000  # the operator\n"
            f"witness\tsh\t{W['sh'].vkey} http://127.0.0.1:8101\r\n"
            f"witness ks {W['ks'].vkey}\n"
            "group regions all sh ks\n   \ngroup any-region any sh ks\ngroup two 2 regions any-region\n"
            "quorum two\n")
    p = Policy.parse(text)
    assert [log.url for log in p.logs] == ["http://127.0.0.1:8000"]
    assert p.logs[0].verifier.name == ORIGIN
    assert [(w.name, w.cosigner.name, w.url) for w in p.witnesses] == [
        ("sh", "witness.sh.test", "http://127.0.0.1:8101"), ("ks", "witness.ks.test", None)]
    assert [(g.name, g.threshold, g.members) for g in p.groups] == [
        ("regions", 2, ("sh", "ks")), ("any-region", 1, ("sh", "ks")), ("two", 2, ("regions", "any-region"))]
    assert p.quorum == "two"
    assert Policy.parse(f"log {LOG_VKEY}\nquorum none\n").quorum is None


@pytest.mark.parametrize("lines, line, words", [
    (["frobnicate x"], 2, "unknown directive 'frobnicate'"),
    (["log"], 2, "log takes 1 or 2 arguments"),
    (["log a b c"], 2, "log takes 1 or 2 arguments"),
    (["log not-a-key"], 2, "is not a note verifier key"),
    (["log {ext}"], 2, "is not a note verifier key"),                  # a witness's vkey where a log key goes
    (["log {log}"], 2, "listed twice"),
    (["witness sh"], 2, "witness takes 2 or 3 arguments"),
    (["witness sh {log}"], 2, "is not a cosignature/v1 vkey"),          # a note key where a witness vkey goes
    (["witness sh {sh}", "witness sh {ks}"], 3, "the name sh is defined twice"),
    (["witness sh {sh}", "witness sh2 {sh}"], 3, "named witness.sh.test, as witness sh's is"),
    (["witness none {sh}"], 2, "`none` is reserved"),
    (["witness sh {sh}", "group sh any sh"], 3, "the name sh is defined twice"),
    (["group g any"], 2, "at least one member"),
    (["group g any sh"], 2, "sh is not a witness or group defined above"),
    (["group g any sh", "witness sh {sh}"], 2, "sh is not a witness or group defined above"),   # used before defined
    (["witness sh {sh}", "group g any sh sh"], 3, "names a member twice"),
    (["witness sh {sh}", "witness ks {ks}", "group g 0 sh ks"], 4, "a number from 1 to 2"),
    (["witness sh {sh}", "witness ks {ks}", "group g 3 sh ks"], 4, "a number from 1 to 2"),
    (["witness sh {sh}", "group g two sh"], 3, "not 'two'"),
    (["witness sh {sh}", "group g -1 sh"], 3, "not '-1'"),
    (["witness sh {sh}", "group g \u0661 sh"], 3, "a number from 1 to 1"),  # an Arabic-Indic one is not a 1
    (["quorum"], 2, "quorum takes 1 argument"),
    (["quorum g"], 2, "quorum g is not a witness or group defined above"),
    (["quorum none", "quorum none"], 3, "exactly one"),
])
def test_parse_errors_name_the_line(lines, line, words):
    keys = {"log": LOG_VKEY, **{name: w.vkey for name, w in W.items()}}
    text = "\n".join([f"log {LOG_VKEY}"] + [l.format(**keys) for l in lines] + ["quorum none"]) + "\n"
    if lines[-1].startswith("quorum"):
        text = text.removesuffix("quorum none\n")
    with pytest.raises(PolicyError) as info:
        Policy.parse(text)
    assert str(info.value).startswith(f"line {line}: ") and words in str(info.value), str(info.value)


@pytest.mark.parametrize("text, words", [
    ("quorum none\n", "names no log"),
    (f"log {LOG_VKEY}\n", "has no quorum"),
    ("", "names no log"),
    (f"log {LOG_VKEY}\nquorum none\n" + "#" * MAX_POLICY_BYTES, "at most"),
    ("log \udc80\nquorum none\n", "UTF-8"),
])
def test_whole_policy_errors(text, words):
    with pytest.raises(PolicyError) as info:
        Policy.parse(text)
    assert words in str(info.value)


@settings(max_examples=50)
@given(st.lists(st.sampled_from(["log", "witness", "group", "quorum", "none", "all", "any", "0", "1", "2", "sh",
                                 "g", "#", "\n", LOG_VKEY, W["sh"].vkey, "http://x"]) | st.text(max_size=8),
                max_size=40))
def test_garbage_policies_are_policy_errors_or_policies(tokens):
    try:
        parsed = Policy.parse(" ".join(tokens))
    except PolicyError:
        return
    assert parsed.logs  # whatever parses has a log and a quorum line


# --- evaluation ---------------------------------------------------------------------------------

def test_all_requires_every_member_and_names_the_group_and_who_cosigned():
    p = policy("group regions all sh ks wj", "quorum regions")
    checkpoint, signers = p.check(cosigned("sh", "ks", "wj"))
    assert (checkpoint.origin, checkpoint.size, checkpoint.root_hash) == (ORIGIN, 5, ROOT)
    assert signers == ["sh", "ks", "wj"]
    why = refused(p, cosigned("sh", "ks"))
    assert "quorum regions is not met" in why and "group regions needs 3 of sh, ks, wj and has 2 (sh, ks)" in why
    assert why.endswith("cosigned by sh, ks")


def test_any_is_one_member():
    p = policy("group regions any sh ks wj", "quorum regions")
    assert p.check(cosigned("wj"))[1] == ["wj"]
    assert "has 0" in refused(p, cosigned("ext"))
    assert "cosigned by no witness of the policy" in refused(p, cosigned())


def test_k_of_n():
    p = policy("group regions 2 sh ks wj", "quorum regions")
    for pair in (("sh", "ks"), ("ks", "wj"), ("sh", "wj")):
        assert p.check(cosigned(*pair))[1] == [n for n in ("sh", "ks", "wj") if n in pair]
    assert p.check(cosigned("wj", "sh", "ks"))[1] == ["sh", "ks", "wj"]  # in policy order
    assert "needs 2 of sh, ks, wj and has 1 (ks)" in refused(p, cosigned("ks"))


def test_nested_groups():
    p = policy("group regions 2 sh ks wj", "group outside any ext", "group both all regions outside", "quorum both")
    assert p.check(cosigned("sh", "wj", "ext"))[1] == ["sh", "wj", "ext"]
    why = refused(p, cosigned("sh", "ks", "wj"))
    assert "group both needs 2 of regions, outside and has 1 (regions)" in why
    assert "group outside needs 1 of ext and has 0" in why
    why = refused(p, cosigned("sh", "ext"))
    assert "group regions needs 2 of sh, ks, wj and has 1 (sh)" in why


def test_deep_nesting_is_evaluated_without_recursion():
    body = ["group g0 any sh"] + [f"group g{n} any g{n - 1}" for n in range(1, 3000)] + ["quorum g2999"]
    p = policy(*body)
    assert p.check(cosigned("sh"))[1] == ["sh"]
    why = refused(p, cosigned("ks"))
    assert why.startswith("the quorum g2999 is not met: group g2999 needs 1 of g2998") and len(why) < 1000


def test_a_wide_failing_group_is_explained_briefly():
    body = [f"group g{n} all sh ks" for n in range(500)] + [f"group top 1 {' '.join(f'g{n}' for n in range(500))}",
                                                              "quorum top"]
    why = refused(policy(*body), cosigned("sh"))
    assert why.count("group g") == 3 and len(why) < 4000


def test_a_single_witness_as_the_quorum():
    p = policy("quorum ext")
    assert p.check(cosigned("ext"))[1] == ["ext"]
    assert "witness ext did not cosign" in refused(p, cosigned("sh", "ks", "wj"))


def test_quorum_none_needs_the_log_signature_alone():
    p = policy("quorum none")
    assert p.check(log_signed())[1] == []
    assert p.check(cosigned("sh"))[1] == ["sh"]  # cosignatures are still reported
    region = SigningKey.generate("KS")
    legacy = sign_note(TEXT, [(f"{ORIGIN}/KS", region.sign, region.public_key_raw)])
    assert "not signed by a log key of the policy" in refused(p, legacy)


def test_the_policy_names_witnesses_by_its_own_names():
    p = Policy.parse(f"log {LOG_VKEY}\nwitness kunshan {W['ks'].vkey}\nquorum kunshan\n")
    assert p.check(cosigned("ks"))[1] == ["kunshan"]


def test_a_checkpoint_missing_one_required_witness_fails():
    p = policy("group regions all sh ks wj", "group outside any ext", "group both all regions outside", "quorum both")
    assert p.check(cosigned("sh", "ks", "wj", "ext"))
    for missing in ("sh", "ks", "wj", "ext"):
        why = refused(p, cosigned(*(n for n in ("sh", "ks", "wj", "ext") if n != missing)))
        assert "quorum both is not met" in why


def test_a_bad_cosignature_by_a_listed_witness_fails():
    p = policy("group regions 2 sh ks wj", "quorum regions")
    note = W["ks"].cosign(cosigned("sh", "wj"), over=OTHER_TEXT)  # ks's line, over another tree
    assert "invalid cosignature by witness witness.ks.test" in refused(p, note)
    # A listed witness that is not needed for the quorum still may not lie.
    assert "invalid cosignature" in refused(policy("quorum sh"), W["ks"].cosign(cosigned("sh"), over=OTHER_TEXT))
    # Tampered in transit: the key ID and timestamp are kept, the signature is not the witness's.
    good = cosigned("sh", "ks", "wj")
    line = [l for l in good.split("\n") if l.startswith("\u2014 witness.wj.test ")][0]
    blob = bytearray(base64.b64decode(line.rsplit(" ", 1)[1]))
    blob[-1] ^= 1
    forged = good.replace(line, line.rsplit(" ", 1)[0] + " " + base64.b64encode(bytes(blob)).decode())
    assert "invalid cosignature by witness witness.wj.test" in refused(p, forged)


def test_unknown_cosigners_and_signers_are_ignored():
    p = policy("group regions all sh ks wj", "quorum regions")
    note = cosigned("sh", "ks", "wj", "stranger")
    other_log = SigningKey.generate("log")
    note = add_signature_lines(note, log_signed(key=other_log, name="other.example/log").split("\n\n", 1)[1])
    assert p.check(note)[1] == ["sh", "ks", "wj"]
    # A stranger's line under a listed witness's name is not that witness's: its key ID differs.
    impostor = Witness("witness.wj.test")
    assert "has 2 (sh, ks)" in refused(p, impostor.cosign(cosigned("sh", "ks")))


def test_the_log_signature_must_be_by_a_policy_log_key_and_verify():
    p = policy("quorum none")
    other = SigningKey.generate("log")
    assert "not signed by a log key of the policy" in refused(p, log_signed(key=other))
    forged = TEXT + "\n" + log_signed(OTHER_TEXT).split("\n\n", 1)[1]  # the log's signature of another tree
    assert "the log key's signature does not verify" in refused(p, forged)
    # Two log keys (a rotation): either one's signature will do.
    two = Policy.parse(f"log {LOG_VKEY}\nlog {verifier_key(ORIGIN, other.public_key_raw)}\nquorum none\n")
    assert two.check(log_signed(key=other))[0].size == 5


def test_a_log_key_vouches_only_for_its_own_origin():
    elsewhere = Checkpoint("vouchers.test/other", 5, ROOT).text()
    assert "the checkpoint's origin is 'vouchers.test/other'" in refused(policy("quorum none"), log_signed(elsewhere))


@pytest.mark.parametrize("note", ["", "no blank line", TEXT + "\n", "x\n\n\u2014 a b\n", TEXT + "\n\u2014 x AAAA\n"])
def test_malformed_notes_are_policy_errors(note):
    assert refused(policy("quorum none"), note)

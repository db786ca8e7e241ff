"""Verification policies: which log must sign a checkpoint and which witnesses
must cosign it before a client believes it (DESIGN §10), in the Sigsum style.

One directive a line; `#` starts a comment that runs to the end of the line;
blank lines are ignored; fields are separated by white space:

    log VKEY [URL]                 a note verifier key of the log key (name = the origin)
    witness NAME VKEY [URL]        a cosignature/v1 vkey (c2sp.org/tlog-cosignature)
    group NAME k|all|any MEMBER... k of the members (witness or group names) must be satisfied
    quorum NAME|none               the witness or group that must be satisfied (exactly one line)

Witness and group names share one namespace, are unique, and are defined
before a group or the quorum names them (so a policy cannot loop). A
checkpoint satisfies the policy when one of the `log` keys signed it (its
note name being the checkpoint's origin) and the quorum is met by valid
cosignatures. Signature lines by keys the policy does not list are ignored;
a line by a listed key that does not verify is an error (note.open_note,
cosignature.cosignatures). URLs are kept for tools that fetch; verifying
needs none of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .cosignature import Cosigner, cosignatures
from .note import Checkpoint, NoteError, Verifier, open_note, parse_note

MAX_POLICY_BYTES = 64 << 10       # a policy is a few lines; this bounds what a hostile file costs
THRESHOLDS = ("all", "any")
NONE = "none"
_EXPLAIN_DEPTH = 3                # how many levels of nested groups a failure spells out,
_EXPLAIN_WIDTH = 3                # and how many failing subgroups of each


class PolicyError(ValueError):
    """A policy that does not parse, or a checkpoint that does not satisfy it."""


@dataclass(frozen=True)
class Log:
    verifier: Verifier
    url: str | None = None


@dataclass(frozen=True)
class Witness:
    name: str                     # the policy's name for it (groups and messages use it)
    cosigner: Cosigner            # its vkey: the name in its signature lines and its key
    url: str | None = None


@dataclass(frozen=True)
class Group:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    logs: tuple[Log, ...]
    witnesses: tuple[Witness, ...]
    groups: tuple[Group, ...]     # in definition order: members always come first
    quorum: str | None            # None: `quorum none`, the log's signature alone suffices

    @classmethod
    def parse(cls, text: str) -> "Policy":
        return _Parser().parse(text)

    def check(self, note: str) -> tuple[Checkpoint, list[str]]:
        """The checkpoint of `note` and the witnesses (policy names, in policy order) whose
        cosignature on it verifies, once a log key signed it and the quorum is met."""
        checkpoint = self.check_log_signature(note)
        cosigned = self.cosigned(note)
        satisfied = self._satisfied(cosigned)
        if self.quorum is not None and not satisfied[self.quorum]:
            raise PolicyError(f"the quorum {self.quorum} is not met: {self._explain(self.quorum, satisfied)}; "
                              f"cosigned by {', '.join(cosigned) or 'no witness of the policy'}")
        return checkpoint, cosigned

    def check_log_signature(self, note: str) -> Checkpoint:
        try:
            text, _signatures = parse_note(note)
            checkpoint = Checkpoint.parse(text)
        except NoteError as exc:
            raise PolicyError(f"not a signed checkpoint: {exc}") from None
        try:
            _text, good = open_note(note, [log.verifier for log in self.logs])
        except NoteError as exc:
            if str(exc).startswith("invalid signature"):
                raise PolicyError(f"the log key's signature does not verify ({exc})") from None
            raise PolicyError("not signed by a log key of the policy "
                              f"({', '.join(_vkey_label(log.verifier) for log in self.logs)})") from None
        # A log key vouches for its own log only: its note name is the origin
        # (c2sp.org/tlog-checkpoint), so it cannot lend its signature to another.
        if not any(verifier.name == checkpoint.origin for verifier in good):
            raise PolicyError(f"signed by the log key of {', '.join(v.name for v in good)}, but the checkpoint's "
                              f"origin is {checkpoint.origin!r}")
        return checkpoint

    def cosigned(self, note: str) -> list[str]:
        """The witnesses (policy names, in policy order) whose cosignature on the note verifies."""
        try:
            good = cosignatures(note, [w.cosigner for w in self.witnesses])
        except NoteError as exc:
            raise PolicyError(str(exc)) from None
        return [w.name for w in self.witnesses if w.cosigner.name in good]

    def _satisfied(self, cosigned: list[str]) -> dict[str, bool]:
        """Every witness and group: satisfied or not. Groups in definition order, so members are known
        before the groups that name them, without recursion however deep the nesting."""
        done = {w.name: w.name in cosigned for w in self.witnesses}
        for group in self.groups:
            done[group.name] = sum(done[m] for m in group.members) >= group.threshold
        return done

    def _explain(self, name: str, satisfied: dict[str, bool], depth: int = 0) -> str:
        group = self._groups.get(name)
        if group is None:
            return f"witness {name} did not cosign"
        have = [m for m in group.members if satisfied[m]]
        why = (f"group {name} needs {group.threshold} of {', '.join(group.members)} and has {len(have)}"
               + (f" ({', '.join(have)})" if have else ""))
        failing = [m for m in group.members if not satisfied[m] and m in self._groups][:_EXPLAIN_WIDTH]
        if failing and depth < _EXPLAIN_DEPTH:
            why += "; " + "; ".join(self._explain(m, satisfied, depth + 1) for m in failing)
        return why

    @cached_property
    def _groups(self) -> dict[str, Group]:
        return {g.name: g for g in self.groups}


def _vkey_label(verifier: Verifier) -> str:
    return f"{verifier.name}+{verifier.key_hash.hex()}"


def _parse_key(parse, text: str, what: str):
    try:
        return parse(text)
    except NoteError as exc:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise PolicyError(f"{shown!r} is not {what}: {exc}") from None


class _Parser:
    def __init__(self):
        self.logs: list[Log] = []
        self.witnesses: list[Witness] = []
        self.groups: list[Group] = []
        self.quorum: str | None = None
        self.has_quorum = False
        self.names: set[str] = set()

    def parse(self, text: str) -> Policy:
        if not isinstance(text, str):
            raise PolicyError("a policy is text")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise PolicyError("a policy must be valid UTF-8") from None
        if size > MAX_POLICY_BYTES:
            raise PolicyError(f"a policy is at most {MAX_POLICY_BYTES} bytes")
        for number, line in enumerate(text.split("\n"), 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            try:
                self.directive(fields[0], fields[1:])
            except PolicyError as exc:
                raise PolicyError(f"line {number}: {exc}") from None
        if not self.logs:
            raise PolicyError("the policy names no log: add a `log VKEY` line")
        if not self.has_quorum:
            raise PolicyError("the policy has no quorum: add `quorum NAME` or `quorum none`")
        return Policy(tuple(self.logs), tuple(self.witnesses), tuple(self.groups), self.quorum)

    def directive(self, keyword: str, args: list[str]) -> None:
        if keyword == "log":
            self.arity(keyword, args, 1, 2, "log VKEY [URL]")
            verifier = _parse_key(Verifier.parse, args[0], "a note verifier key (name+hash+base64(0x01||key))")
            if any(log.verifier == verifier for log in self.logs):
                raise PolicyError(f"log key {_vkey_label(verifier)} is listed twice")
            self.logs.append(Log(verifier, args[1] if len(args) > 1 else None))
        elif keyword == "witness":
            self.arity(keyword, args, 2, 3, "witness NAME VKEY [URL]")
            self.new_name(args[0])
            cosigner = _parse_key(Cosigner.parse, args[1], "a cosignature/v1 vkey (name+keyid+base64(0x04||key))")
            for other in self.witnesses:
                # Cosignature lines carry the vkey's name: two witnesses with one
                # name would make "who cosigned" ambiguous.
                if other.cosigner.name == cosigner.name:
                    raise PolicyError(f"witness {args[0]}'s vkey is named {cosigner.name}, as witness "
                                      f"{other.name}'s is")
            self.witnesses.append(Witness(args[0], cosigner, args[2] if len(args) > 2 else None))
            self.names.add(args[0])
        elif keyword == "group":
            if len(args) < 3:
                raise PolicyError("group takes a name, a threshold and at least one member: "
                                  "group NAME k|all|any MEMBER...")
            name, threshold_text, members = args[0], args[1], tuple(args[2:])
            self.new_name(name)
            for member in members:
                if member not in self.names:
                    raise PolicyError(f"group {name}: {member} is not a witness or group defined above")
            if len(set(members)) != len(members):
                raise PolicyError(f"group {name} names a member twice")
            self.groups.append(Group(name, self.threshold(name, threshold_text, len(members)), members))
            self.names.add(name)
        elif keyword == "quorum":
            self.arity(keyword, args, 1, 1, "quorum NAME|none")
            if self.has_quorum:
                raise PolicyError("a second quorum line: a policy has exactly one")
            if args[0] != NONE and args[0] not in self.names:
                raise PolicyError(f"quorum {args[0]} is not a witness or group defined above (or `none`)")
            self.quorum, self.has_quorum = (None if args[0] == NONE else args[0]), True
        else:
            raise PolicyError(f"unknown directive {keyword!r} (log, witness, group or quorum)")

    @staticmethod
    def arity(keyword: str, args: list[str], least: int, most: int, usage: str) -> None:
        if not least <= len(args) <= most:
            raise PolicyError(f"{keyword} takes {least}{'' if least == most else f' or {most}'} "
                              f"argument{'s' if most > 1 else ''}: {usage}")

    def new_name(self, name: str) -> None:
        if name == NONE:
            raise PolicyError("`none` is reserved (quorum none)")
        if name in self.names:
            raise PolicyError(f"the name {name} is defined twice")

    @staticmethod
    def threshold(name: str, text: str, members: int) -> int:
        if text == "all":
            return members
        if text == "any":
            return 1
        if not (text.isascii() and text.isdigit()) or len(text) > 6 or not 1 <= int(text) <= members:
            raise PolicyError(f"group {name}: the threshold is all, any or a number from 1 to {members} "
                              f"(its number of members), not {text!r}")
        return int(text)

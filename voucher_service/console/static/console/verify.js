// The ledger's verifier in the browser (DESIGN §11): receipts, entries and
// checkpoints checked on the reader's machine with WebCrypto (Ed25519 and
// SHA-256) against the published keys, trusting nothing the server says
// about the result. It does what voucher_service/ledger/verify/ does (the
// source of truth; file names below are that package's and ledger/'s), check
// for check, with the same limits; tests/browser/test_js_verifier.py holds
// the two to each other on the vectors and on tampered real receipts.
//
// Every function returns a Promise (but the two base64 helpers at the end) and
// never throws: malformed input gives ok: false and a detail. The keys document is GET /api/v1/ledger/keys; a
// receipt is GET /api/v1/ledger/receipts/{seq}; `witnesses` is the
// `witnesses` list of GET /api/v1/ledger/witnesses ({name, vkey} each) or a
// list of cosignature/v1 vkeys. Documents may be given as text (exact: it
// tells 5 from 5.0 as Python does) or as parsed JSON.
//
// Checks, in the order they are reported (`name` is one of these; the detail
// is English for people, the name is for the console to translate):
//   keys                the keys document is valid (verify/keys.py load_keys)
//   witness_keys        every witness vkey parses (only when witnesses are given)
//   receipt_format      the receipt has its fields, leaf_index < tree_size
//   entry_signature     the entry is its own RFC 8785 form, of the documented
//                       shape, signed by a published key of its region valid at
//                       its ts; a key rotation follows its rule (verify/entries.py,
//                       rotation.py)
//   leaf_hash           the receipt's leaf_hash is SHA-256(0x00 || entry)
//   checkpoint_format   a C2SP signed note holding a checkpoint of the keys' origin
//   log_signature       signed by the log key (every line by a published key verifies)
//   region_signatures   instead of the log key: every region's key signed it, as
//                       checkpoints of entries from before the upgrade to witnessed
//                       checkpoints were (verify/checkpoint.py check_signers)
//   inclusion           the inclusion proof leads from the entry to the checkpoint's root
//   cosignature:<name>  one per listed witness whose line is in the note: it verifies
//   tlog_proof          the receipt's c2sp.org/tlog-proof repeats its index, proof
//                       and checkpoint
//   internal            a bug of this file, reported rather than thrown
// A check whose input did not parse is left out; `ok` is true only when every
// check made passed and none had to be left out. Witnesses are treated as a
// verification policy listing them with `quorum none` (ledger/policy.py):
// a cosignature present must verify, none is required; `absent` lists those
// that did not cosign.
//
// Where this differs from the Python verifier, by necessity: a standalone
// checkpoint has no newest entry to date it, so once the keys document has a
// log key only the log key's signature is accepted (Python, told the entry
// time, accepts region keys for entries from before the upgrade: pass
// {lastTs} to verifyCheckpoint for that); JSON nested deeper than MAX_DEPTH is
// refused (Python refuses at its recursion limit, about 1000); base64 with
// padding other than standard ("AAAA=") is refused where CPython 3.11's
// decoder lets it through. Nothing Python refuses is accepted.

const CHECK_NAMES = Object.freeze(["keys", "witness_keys", "receipt_format", "entry_signature", "leaf_hash",
  "checkpoint_format", "log_signature", "region_signatures", "inclusion", "cosignature:", "tlog_proof", "internal"]);
const MAX_LINE_BYTES = 1 << 20, MAX_KEYS = 100000, MAX_NOTE_BYTES = 1000000, MAX_SIGNATURES = 100;
const MAX_PROOF_HASHES = 64, MAX_DEPTH = 512, MAX_SAFE = 2n ** 53n - 1n;
const SIG_PREFIX = "\u2014 ", TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";
const ALG_ED25519 = 0x01, ALG_COSIGNATURE_V1 = 0x04, ROTATION_KIND = "key.rotated";
const ENTRY_FIELDS = ["actor", "data", "kind", "postings", "refs", "region", "seq", "sig", "ts", "v"];
const ROTATION_FIELDS = ["retired_key_id", "key_id", "note_key", "valid_from"];
const ENDORSEMENT_DOMAIN = "vouchers/key-endorsement/v1\n";
const TIMESTAMP = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.[0-9]{6}Z$/;
const SIGNATURE_B64 = /^[A-Za-z0-9+/]{85}[AQgw]==$/;  // canonical base64 of 64 bytes (entries.py)
const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const LONE_SURROGATE = /\p{Cs}/u;
const NOT_NAME = /[+\p{C}\p{Z}]/u;            // check_key_name: no "+", whitespace or unprintable
const NOT_PRINTABLE = /(?! )[\p{C}\p{Z}]/u;   // Python's str.isprintable, space allowed
const PY_SPACE = "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const PY_STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, "g");

class Refusal extends Error {}
const refuse = (why) => { throw new Refusal(why); };
const pass = (name, detail) => ({ name, ok: true, detail });
const failed = (name, error) => ({ name, ok: false, detail: reason(error) });
const reason = (error) => (error instanceof Refusal ? error.message : `internal error: ${error && error.message}`);
function show(value) {  // a value quoted in a detail, cut short as common.py's show
  let text;
  try { text = typeof value === "bigint" ? `${value}` : JSON.stringify(value) ?? String(value); }
  catch { text = String(value); }
  return text.length <= 60 ? text : `${text.slice(0, 57)}...`;
}

// --- bytes -----------------------------------------------------------------------------------------

const encoder = new TextEncoder();
const utf8 = (text) => (typeof text === "string" && !LONE_SURROGATE.test(text) ? encoder.encode(text) : null);
const concat = (...parts) => { const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; } return out; };
const equal = (a, b) => !!a && !!b && a.length === b.length && a.every((x, i) => x === b[i]);
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));

function b64decode(text) {  // standard padded base64; stray bits allowed, as Python's and Go's decoders do
  if (typeof text !== "string" || !B64.test(text)) return null;
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}
function b64encode(bytes) { let s = ""; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); }
function strictB64(text) {  // common.py strict_b64: only the one canonical spelling
  const raw = b64decode(text);
  return raw !== null && b64encode(raw) === text ? raw : null;
}
function bytesOf(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  const isByte = (b) => Number.isInteger(b) && b >= 0 && b < 256;
  return Array.isArray(value) && value.every(isByte) ? Uint8Array.from(value) : null;
}

// --- Ed25519 as libsodium decides it (ledger/signing.py) -------------------------------------------
// Chromium's Ed25519 (BoringSSL) accepts signatures libsodium refuses: with R of
// small order, and by a small-order public key (a forgery of any message). The
// service's verdict is libsodium's, so what libsodium refuses up front (also
// S >= L and non-canonical keys) is refused here before WebCrypto is asked. The
// curve arithmetic below only classifies public keys for the keys document
// (crypto_core_ed25519_is_valid_point); it verifies nothing.

const P = 2n ** 255n - 19n, L = 2n ** 252n + 27742317777372353535851937790883648493n;
const mod = (a) => { const r = a % P; return r < 0n ? r + P : r; };
function power(base, exponent) { let r = 1n, b = mod(base), e = exponent;
  while (e > 0n) { if (e & 1n) r = (r * b) % P; b = (b * b) % P; e >>= 1n; } return r; }
const D = mod(-121665n * power(121666n, P - 2n)), SQRT_M1 = power(2n, (P - 1n) / 4n);
// libsodium's blocklist (ed25519_ref10.c), as y ignoring the sign bit: the points of order 1, 2, 4 and 8, and
// the non-canonical spellings p and p + 1 of y = 0 and 1.
const Y_ORDER_8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;
const SMALL_ORDER_Y = new Set([0n, 1n, Y_ORDER_8, P - Y_ORDER_8, P - 1n, P, P + 1n]);
const littleEndian = (bytes) => bytes.reduceRight((n, b) => (n << 8n) | BigInt(b), 0n);
const encodedY = (bytes) => littleEndian(bytes) & (2n ** 255n - 1n);

function decodePoint(bytes) {  // RFC 8032 §5.1.3, in extended coordinates
  const y = encodedY(bytes), sign = bytes[31] >> 7;
  if (y >= P) return null;
  const u = mod(y * y - 1n), v = mod(D * y * y + 1n);
  let x = mod(u * power(v, 3n) * power(u * power(v, 7n), (P - 5n) / 8n));
  if (mod(v * x * x) !== u) { if (mod(v * x * x) !== mod(-u)) return null; x = mod(x * SQRT_M1); }
  if (x === 0n && sign) return null;
  if (Number(x & 1n) !== sign) x = P - x;
  return [x, y, 1n, mod(x * y)];
}
function addPoints([X1, Y1, Z1, T1], [X2, Y2, Z2, T2]) {  // complete for a = -1 (add-2008-hwcd-3)
  const A = mod((Y1 - X1) * (Y2 - X2)), B = mod((Y1 + X1) * (Y2 + X2));
  const C = mod(T1 * 2n * D * T2), E = mod(Z1 * 2n * Z2);
  const F = E - C, G = E + C, H = B + A, K = B - A;
  return [mod(K * F), mod(G * H), mod(F * G), mod(K * H)];
}
function multiply(point, scalar) { let r = [0n, 1n, 1n, 0n], q = point, n = scalar;
  while (n > 0n) { if (n & 1n) r = addPoints(r, q); q = addPoints(q, q); n >>= 1n; } return r; }

function acceptsPublicKey(raw) {  // signing.py sodium_accepts_public_key
  if (!(raw instanceof Uint8Array) || raw.length !== 32) return false;
  const y = encodedY(raw);
  if (y >= P || SMALL_ORDER_Y.has(y)) return false;
  const point = decodePoint(raw);
  if (point === null) return false;
  const [X, Y, Z] = multiply(point, L);  // in the prime-order subgroup: L times it is the identity
  return X === 0n && Y === Z;
}

const importedKeys = new Map();
async function verifyDetached(signature, message, publicKey) {  // signing.py verify_detached
  if (!(signature instanceof Uint8Array) || signature.length !== 64 || !(publicKey instanceof Uint8Array)
      || publicKey.length !== 32) return false;
  // crypto_sign_verify_detached's checks: S < L, R not of small order, the key canonical and not of small order.
  if (littleEndian(signature.subarray(32)) >= L || SMALL_ORDER_Y.has(encodedY(signature.subarray(0, 32)))) return false;
  const y = encodedY(publicKey);
  if (y >= P || SMALL_ORDER_Y.has(y)) return false;
  try {
    const id = hex(publicKey);
    if (!importedKeys.has(id)) {
      importedKeys.set(id, crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]));
    }
    return await crypto.subtle.verify({ name: "Ed25519" }, await importedKeys.get(id), signature, message);
  } catch { return false; }
}

// --- JSON: a strict parser, and RFC 8785 bytes (ledger/canonical.py) ------------------------------

class JsonFloat { constructor(text) { this.text = text; } }  // a number with a fraction or exponent

// `ledger`: the entry format's rules (integers only, at most 2^53 - 1). Otherwise, as json.loads:
// floats come back as JsonFloat (never an integer), larger integers as BigInt.
function parseJson(text, ledger) {
  let i = 0;
  const fail = (why) => refuse(`${why} at character ${i}`);
  const space = () => { while (" \t\n\r".includes(text[i]) && i < text.length) i++; };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
  const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
  function string() {
    let out = "", start = ++i;
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) { out += text.slice(start, i++); return out; }
      if (c < 0x20) fail("control character in a string");
      if (c !== 0x5c) { i++; continue; }
      out += text.slice(start, i++);
      const e = text[i];
      if (has(ESCAPES, e)) { out += ESCAPES[e]; i++; }
      else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) {
        out += String.fromCharCode(parseInt(text.slice(i + 1, i + 5), 16));
        i += 5;
      } else fail("invalid escape");
      start = i;
    }
  }
  function value(depth) {
    if (depth > MAX_DEPTH) fail(`nested more than ${MAX_DEPTH} deep`);
    space();
    const c = text[i];
    if (c === "{" || c === "[") {
      const object = c === "{", out = object ? Object.create(null) : [];
      i++; space();
      if (text[i] === (object ? "}" : "]")) { i++; return out; }
      for (;;) {
        space();
        if (object) {
          if (text[i] !== '"') fail("expected a member name");
          const key = string(); space();
          if (text[i++] !== ":") fail("expected ':'");
          out[key] = value(depth + 1);
        } else out.push(value(depth + 1));
        space();
        const next = text[i++];
        if (next === (object ? "}" : "]")) return out;
        if (next !== ",") fail("expected ',' or the end of the " + (object ? "object" : "array"));
      }
    }
    if (c === '"') return string();
    for (const [word, literal] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) { i += word.length; return literal; }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail("expected a JSON value");
    i = NUMBER.lastIndex;
    if (m[1] || m[2]) {
      if (ledger) fail(`${m[0]}: floats are not allowed in ledger values`);
      return new JsonFloat(m[0]);
    }
    const n = BigInt(m[0]);
    if (n >= -MAX_SAFE && n <= MAX_SAFE) return Number(n);
    if (ledger) fail(`integer ${m[0].slice(0, 30)} is beyond 2^53 and cannot be canonical JSON`);
    return n;
  }
  if (typeof text !== "string") refuse("not JSON text");
  const result = value(0);
  space();
  if (i !== text.length) fail("more after the JSON value");
  return result;
}

function canonicalJson(value) {  // RFC 8785 for integers, strings, literals, arrays and objects
  if (value === null || value === true || value === false) return String(value);
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value)) refuse("strings must be valid Unicode (no lone surrogates)");
    return JSON.stringify(value);  // JSON.stringify's escaping is RFC 8785's and Python's json's
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (isObject(value)) {  // members in UTF-16 code unit order, as sort() compares
    return `{${Object.keys(value).sort().map((k) => `${canonicalJson(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  refuse(`${show(value)} is not a ledger value (floats and integers beyond 2^53 are not)`);
}

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof JsonFloat)
  && !ArrayBuffer.isView(v);
const isInt = (v) => (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint";
const isText = (v) => typeof v === "string" && v.length > 0;
const has = (object, name) => Object.prototype.hasOwnProperty.call(object, name);
const exactly = (object, names) => Object.keys(object).length === names.length && names.every((n) => has(object, n));
const jsonInput = (value, what) => (typeof value === "string" ? parseJson(value, false) : value)
  ?? refuse(`no ${what}`);

function checkString(value, what) {
  if (!isText(value)) refuse(`${what} must be a non-empty string, not ${show(value)}`);
  return value;
}
function checkTimestamp(value, what) {  // common.py check_timestamp: the regex, then a real date and time
  const m = typeof value === "string" ? TIMESTAMP.exec(value) : null;
  if (!m) refuse(`${what} ${show(value)} is not an RFC 3339 UTC time with microseconds (2026-01-31T08:00:00.000000Z)`);
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  if (year < 1 || !days || day < 1 || day > days || hour > 23 || minute > 59 || second > 59) {
    refuse(`${what} ${value} is not a valid date and time`);
  }
  return value;
}
function checkKeyName(name) { if (!isText(name) || NOT_NAME.test(name)) refuse(`invalid note key name ${show(name)}`); }

// --- keys: note verifier keys (ledger/note.py) and the keys document (verify/keys.py) --------------

async function keyHash(name, publicKey, alg = ALG_ED25519) {
  return (await sha256(concat(utf8(name), Uint8Array.of(0x0a, alg), publicKey))).slice(0, 4);
}
async function parseVerifierKey(text, alg = ALG_ED25519) {  // name+hexhash+base64(alg || key)
  const first = typeof text === "string" ? text.indexOf("+") : -1;
  const second = first < 0 ? -1 : text.indexOf("+", first + 1);
  if (second < 0) refuse("a verifier key is name+hash+key");
  const name = text.slice(0, first), hashHex = text.slice(first + 1, second);
  checkKeyName(name);
  if (!/^[0-9a-fA-F]{8}$/.test(hashHex)) refuse("a verifier key hash is 8 hex digits");
  const key = b64decode(text.slice(second + 1));
  if (key === null) refuse("malformed verifier key");
  if (key.length !== 33 || key[0] !== alg) {
    refuse(`not a verifier key of signature type 0x0${alg} with a 32-byte Ed25519 key`);
  }
  const hash = Uint8Array.from(hashHex.match(/../g), (h) => parseInt(h, 16)), publicKey = key.slice(1);
  if (!equal(await keyHash(name, publicKey, alg), hash)) refuse("verifier key hash does not match its key");
  return { name, keyHash: hash, publicKey };
}
const noteId = (name, hash) => `${name}+${hex(hash)}`;

async function loadKeys(input) {
  const doc = jsonInput(input, "keys document");
  if (!isObject(doc)) refuse("the keys document must be a JSON object with `origin` and `keys`");
  const origin = checkString(doc.origin, "origin");
  if (origin.includes("\n") || NOT_PRINTABLE.test(origin)) refuse("origin must be a single printable line");
  const records = doc.keys;
  if (!Array.isArray(records) || !records.length) refuse("`keys` must be a non-empty list");
  if (records.length > MAX_KEYS) refuse(`more than ${MAX_KEYS} keys`);
  const keys = [], byId = new Map(), byNote = new Map();
  for (const [position, record] of records.entries()) {
    let label = `key #${position}`;
    try {
      if (!isObject(record)) refuse("must be a JSON object");
      const keyId = checkString(record.key_id, "key_id");
      label = `key ${keyId}`;
      const purpose = has(record, "purpose") ? record.purpose : "entry";
      if (purpose !== "entry" && purpose !== "log") refuse(`purpose must be one of entry, log, not ${show(purpose)}`);
      if (purpose === "log" && record.region != null) refuse("the log key belongs to no region: its region is null");
      const region = purpose === "log" ? null : checkString(record.region, "region");
      if (record.alg !== "ed25519") refuse(`alg must be 'ed25519', not ${show(record.alg)}`);
      const publicKey = strictB64(checkString(record.public_key, "public_key"));
      if (publicKey === null || publicKey.length !== 32) {
        refuse("public_key must be the base64 of a raw 32-byte Ed25519 key");
      }
      if (!acceptsPublicKey(publicKey)) {  // libsodium would refuse every signature by it
        refuse("public_key is not a valid Ed25519 public key (small order, not canonically encoded, not on the "
          + "curve or outside its prime-order subgroup)");
      }
      const noteName = checkString(record.note_name, "note_name"), noteKey = checkString(record.note_key, "note_key");
      let verifier;
      try { verifier = await parseVerifierKey(noteKey); } catch (e) { refuse(`note_key does not parse: ${reason(e)}`); }
      if (verifier.name !== noteName) refuse(`note_key names ${show(verifier.name)}, note_name is ${show(noteName)}`);
      if (!equal(verifier.publicKey, publicKey)) refuse("note_key and public_key are different keys");
      const validFrom = checkTimestamp(record.valid_from, "valid_from");
      const validUntil = record.valid_until == null ? null : checkTimestamp(record.valid_until, "valid_until");
      if (validUntil !== null && validUntil < validFrom) {
        refuse(`valid_until ${validUntil} is before valid_from ${validFrom}`);
      }
      if (byId.has(keyId)) refuse("key_id is published twice");
      const id = noteId(verifier.name, verifier.keyHash);
      if (byNote.has(id)) refuse(`note key ${id} is published twice`);
      if (purpose === "log" && noteName !== origin) {
        refuse(`the log key's note name must be the origin ${show(origin)}, not ${show(noteName)}`);
      }
      const key = { keyId, purpose, region, publicKey, noteName, verifier, validFrom, validUntil };
      keys.push(key); byId.set(keyId, key); byNote.set(id, key);
    } catch (e) { refuse(`${label}: ${reason(e)}`); }
  }
  const entryKeys = keys.filter((k) => k.purpose === "entry"), logKeys = keys.filter((k) => k.purpose === "log");
  return {
    origin, keys, byId, byNote, logKeys,
    upgradedAt: logKeys.length ? logKeys.map((k) => k.validFrom).sort()[0] : null,
    activeRegions: new Set(entryKeys.filter((k) => k.validUntil === null).map((k) => k.region)),
    regionsValidAt: (ts) => new Set(entryKeys.filter((k) => validAt(k, ts)).map((k) => k.region)),
  };
}
const validAt = (key, ts) => key.validFrom <= ts && (key.validUntil === null || ts < key.validUntil);
const validity = (key) => `valid from ${key.validFrom} until ${key.validUntil || "now (active)"}`;
const keysCheck = (keys) => pass("keys", `${keys.keys.length} published keys of ${keys.origin}`
  + (keys.logKeys.length ? `, log key ${keys.logKeys.map((k) => k.keyId).join(", ")}`
    : ", no log key (a legacy deployment)"));

async function loadWitnesses(input) {  // a cosignature/v1 vkey each (ledger/cosignature.py Cosigner.parse)
  const list = isObject(input) && Array.isArray(input.witnesses) ? input.witnesses : input ?? [];
  if (!Array.isArray(list)) refuse("witnesses must be a list");
  const witnesses = [];
  for (const [position, item] of list.entries()) {
    const vkey = isObject(item) ? item.vkey : item;
    let cosigner;
    try {
      cosigner = await parseVerifierKey(typeof vkey === "string" ? vkey.replace(PY_STRIP, "") : vkey,
        ALG_COSIGNATURE_V1);
    } catch (e) { refuse(`witness #${position}: ${reason(e)}`); }
    const name = isObject(item) && isText(item.name) ? item.name : cosigner.name;
    if (witnesses.some((w) => w.name === name || w.cosigner.name === cosigner.name)) {
      refuse(`witness ${name} is listed twice`);
    }
    witnesses.push({ name, cosigner });
  }
  return witnesses;
}

// --- entries (verify/entries.py, rotation.py, ledger/endorsement.py) ------------------------------

async function checkEntry(text, index, keys) {
  const line = utf8(text);
  if (line === null) refuse("not UTF-8 (a lone surrogate)");
  if (line.length > MAX_LINE_BYTES) refuse(`line longer than ${MAX_LINE_BYTES} bytes`);
  if (!line.length) refuse("empty line");
  let entry;
  try {
    entry = parseJson(text, true);
    if (!isObject(entry)) refuse("an entry must be a JSON object");
    if (canonicalJson(entry) !== text) refuse("entry bytes are not canonical (RFC 8785)");
  } catch (e) { refuse(`not an entry in canonical JSON (RFC 8785): ${reason(e)}`); }
  checkShape(entry, index);
  const sig = entry.sig, key = keys.byId.get(sig.key_id);
  if (!key) refuse(`signed by key ${show(sig.key_id)}, which is not published`);
  if (key.region !== entry.region) {
    refuse(`recorded for region ${entry.region} but signed by key ${key.keyId} of region ${key.region}`);
  }
  if (!validAt(key, entry.ts)) refuse(`signed at ${entry.ts} by key ${key.keyId}, ${validity(key)}`);
  if (!SIGNATURE_B64.test(sig.value)) refuse("sig.value is not the canonical base64 of a 64-byte Ed25519 signature");
  const unsigned = Object.create(null);
  for (const name of Object.keys(entry)) if (name !== "sig") unsigned[name] = entry[name];
  if (!(await verifyDetached(b64decode(sig.value), utf8(canonicalJson(unsigned)), key.publicKey))) {
    refuse(`the signature by key ${key.keyId} does not verify: the entry was changed or signed by another key`);
  }
  if (entry.kind === ROTATION_KIND) await checkRotation(entry, keys);
  return entry;
}

function checkShape(entry, index) {
  if (!exactly(entry, ENTRY_FIELDS)) {
    const missing = ENTRY_FIELDS.filter((n) => !has(entry, n));
    const extra = Object.keys(entry).filter((n) => !ENTRY_FIELDS.includes(n)).sort();
    const parts = [missing.length && `missing ${missing.join(", ")}`, extra.length && `unexpected ${extra.join(", ")}`];
    refuse(`entry fields wrong: ${parts.filter(Boolean).join("; ")}`);
  }
  if (entry.v !== 1) refuse(`format version ${show(entry.v)}, expected 1`);
  if (!isInt(entry.seq)) refuse(`seq ${show(entry.seq)} is not an integer`);
  if (index !== null && BigInt(entry.seq) !== index) refuse(`expected seq ${index}, found seq ${entry.seq}`);
  checkTimestamp(entry.ts, "ts");
  for (const name of ["kind", "region", "actor"]) checkString(entry[name], name);
  if (!isObject(entry.refs) || !Object.values(entry.refs).every((v) => typeof v === "string")) {
    refuse("refs must be an object of strings");
  }
  if (!isObject(entry.data)) refuse("data must be an object");
  if (!Array.isArray(entry.postings)) refuse("postings must be a list");
  entry.postings.forEach((posting, number) => {
    if (!isObject(posting) || !exactly(posting, ["source", "destination", "amount"])) {
      refuse(`posting ${number} must have exactly source, destination and amount`);
    }
    checkString(posting.source, `posting ${number} source`);
    checkString(posting.destination, `posting ${number} destination`);
    if (!isInt(posting.amount) || posting.amount <= 0) {
      refuse(`posting ${number} amount ${show(posting.amount)} is not a positive integer number of fen`);
    }
    if (posting.source === posting.destination) {
      refuse(`posting ${number} moves ${posting.amount} fen from ${posting.source} to itself`);
    }
  });
  const sig = entry.sig;
  if (!isObject(sig) || !exactly(sig, ["key_id", "alg", "value"])) {
    refuse("sig must have exactly key_id, alg and value");
  }
  checkString(sig.key_id, "sig.key_id");
  if (sig.alg !== "ed25519") refuse(`sig.alg ${show(sig.alg)} is not 'ed25519'`);
  checkString(sig.value, "sig.value");
}

async function checkRotation(entry, keys) {  // rotation.py rotation_of and check_rotation
  const data = entry.data, region = entry.region;
  for (const name of ROTATION_FIELDS) checkString(data[name], `the rotation's data.${name}`);
  const validFrom = checkTimestamp(data.valid_from, "the rotation's data.valid_from");
  const retired = keys.byId.get(data.retired_key_id);
  if (!retired || retired.purpose !== "entry" || retired.region !== region) {
    refuse(`the rotation retires key ${show(data.retired_key_id)}, which is not a known key of region ${region}`);
  }
  if (data.key_id === retired.keyId) refuse(`the rotation replaces key ${retired.keyId} with itself`);
  if (entry.sig.key_id !== data.key_id) {
    refuse(`the rotation to key ${data.key_id} is signed by key ${entry.sig.key_id}, not by the new key`);
  }
  let verifier;
  try { verifier = await parseVerifierKey(data.note_key); }
  catch (e) { refuse(`the rotation's data.note_key does not parse: ${reason(e)}`); }
  if (verifier.name !== retired.noteName) {
    refuse(`the new key's note name ${show(verifier.name)} is not the region's ${show(retired.noteName)}`);
  }
  if (!(retired.validFrom <= validFrom && validFrom <= entry.ts)) {
    refuse(`the rotation takes effect at ${validFrom}, outside [${retired.validFrom}, ${entry.ts}]`);
  }
  if (retired.validUntil !== null && retired.validUntil !== validFrom) {
    refuse(`key ${retired.keyId} was retired at ${retired.validUntil}, not by this rotation at ${validFrom}`);
  }
  if (retired.validUntil !== validFrom) {
    refuse(`the retired key ${retired.keyId} is published ${validity(retired)}, but this rotation retired it at `
      + validFrom);
  }
  const added = keys.byId.get(data.key_id);
  if (added.verifier.name !== verifier.name || !equal(added.verifier.keyHash, verifier.keyHash)
      || !equal(added.publicKey, verifier.publicKey) || added.validFrom !== validFrom) {
    refuse(`the published key ${added.keyId} is not the key the rotation introduces `
      + `(${noteId(verifier.name, verifier.keyHash)}, valid from ${validFrom})`);
  }
  if (has(data, "endorsement")) {
    if (!(await checkEndorsement(region, data, retired.publicKey))) {
      refuse(`the rotation's endorsement is not a valid signature by the retired key ${retired.keyId}`);
    }
  } else if (keys.upgradedAt !== null && entry.ts >= keys.upgradedAt) {
    refuse(`the rotation is not endorsed by the retired key ${retired.keyId}: every rotation since the upgrade `
      + `to witnessed checkpoints (${keys.upgradedAt}) must be`);
  }
}

async function checkEndorsement(region, data, retiredKey) {  // endorsement.py check_endorsement
  const e = data.endorsement;
  if (!isObject(e) || e.alg !== "ed25519" || e.key_id !== data.retired_key_id || typeof e.value !== "string") {
    return false;
  }
  const facts = { region, retired_key_id: data.retired_key_id, key_id: data.key_id, note_key: data.note_key,
    valid_from: data.valid_from };
  const signature = b64decode(e.value);
  return signature !== null && signature.length === 64
    && verifyDetached(signature, utf8(ENDORSEMENT_DOMAIN + canonicalJson(facts)), retiredKey);
}

// --- Merkle tree (ledger/merkle.py, RFC 9162 §2.1) ------------------------------------------------

const leafHashOf = (line) => sha256(concat(Uint8Array.of(0), line));
const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));
const toBig = (n) => (typeof n === "bigint" ? n : Number.isSafeInteger(n) ? BigInt(n) : null);

async function inclusion(leaf, index, size, proof, root) {
  if (!(0n <= index && index < size)) return false;
  let fn = index, sn = size - 1n, result = leaf;
  for (const p of proof) {
    if (sn === 0n) return false;
    if (fn & 1n || fn === sn) {
      result = await nodeHash(p, result);
      while (!(fn & 1n) && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else result = await nodeHash(result, p);
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && equal(result, root);
}

async function consistency(first, second, firstRoot, secondRoot, proof) {
  if (!(0n <= first && first <= second)) return false;
  if (first === second) return !proof.length && equal(firstRoot, secondRoot);
  if (first === 0n) return !proof.length;
  if (!proof.length) return false;
  // An exact power of two: the old root is the path's first node.
  const path = (first & (first - 1n)) === 0n ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1n, sn = second - 1n;
  while (fn & 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0], sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr); sr = await nodeHash(c, sr);
      while (!(fn & 1n) && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else sr = await nodeHash(sr, c);
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && equal(fr, firstRoot) && equal(sr, secondRoot);
}

// --- signed notes, checkpoints and cosignatures (ledger/note.py, cosignature.py) -------------------

function parseNoteText(note) {
  if (typeof note !== "string") refuse("a checkpoint is a signed note (text)");
  const bytes = utf8(note);
  if (bytes === null) refuse("a signed note must be valid UTF-8");
  if (bytes.length > MAX_NOTE_BYTES) refuse("note too large");
  if (/[\x00-\x09\x0b-\x1f]/.test(note)) refuse("a signed note has no control characters but newline");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) refuse("a signed note needs a blank line before its signatures");
  const text = note.slice(0, split + 1), block = note.slice(split + 2);
  if (!block.endsWith("\n")) refuse("a signed note ends with a newline");
  const signatures = block.slice(0, -1).split("\n").map((line) => {
    if (!line.startsWith(SIG_PREFIX)) refuse("malformed signature line");
    const rest = line.slice(SIG_PREFIX.length), space = rest.lastIndexOf(" ");
    const name = space < 0 ? "" : rest.slice(0, space), raw = b64decode(rest.slice(space + 1));
    checkKeyName(name);
    if (raw === null || raw.length < 5) refuse("malformed signature");
    return { name, keyHash: raw.slice(0, 4), signature: raw.slice(4) };
  });
  if (signatures.length > MAX_SIGNATURES) refuse("a signed note has 1 to 100 signatures");
  return { text, signatures };
}

function parseCheckpoint(text) {  // note.py Checkpoint.parse
  const lines = text.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "") {
    refuse("a checkpoint is origin, size and root hash, each on its own line");
  }
  const [origin, sizeText, rootText] = lines;
  if (!origin || !/^[0-9]+$/.test(sizeText) || (sizeText !== "0" && sizeText.startsWith("0"))) {
    refuse("malformed checkpoint origin or size");
  }
  if (sizeText.length > 20 || BigInt(sizeText) >= 2n ** 64n) refuse("checkpoint size out of range");
  const root = b64decode(rootText);
  if (root === null) refuse("malformed checkpoint root hash");
  if (root.length !== 32) refuse("checkpoint root hash must be 32 bytes");
  return { origin, size: BigInt(sizeText), root, rootB64: rootText };
}

function cosignedMessage(text, timestamp) {
  return `cosignature/v1\ntime ${timestamp}\n${text}`;
}

// The checks of a checkpoint, by part: its format, who signed it, and each listed witness's cosignature.
// `lastTs` is the ts of the newest entry it covers, if known.
async function checkpointChecks(note, keys, witnesses, lastTs) {
  const out = { format: null, signers: null, cosignatures: [], cosigned: [], absent: [] };
  let parsed, checkpoint;
  try {
    try { parsed = parseNoteText(note); checkpoint = parseCheckpoint(parsed.text); }
    catch (e) { refuse(`not a signed C2SP checkpoint: ${reason(e)}`); }
    if (checkpoint.origin !== keys.origin) {
      refuse(`origin ${show(checkpoint.origin)} is not the keys' origin ${show(keys.origin)}`);
    }
  } catch (e) { out.format = failed("checkpoint_format", e); return out; }
  out.checkpoint = checkpoint;
  out.format = pass("checkpoint_format",
    `checkpoint of ${checkpoint.origin}, tree size ${checkpoint.size}, root ${checkpoint.rootB64}`);
  await signerChecks(parsed, keys, lastTs, out);
  await cosignatureChecks(parsed, witnesses, out);
  return out;
}

// verify/checkpoint.py open_checkpoint (every line by a published key verifies, at least one does) and
// check_signers (the log key since the upgrade; before it, every region's key).
async function signerChecks(parsed, keys, lastTs, out) {
  const message = utf8(parsed.text), signers = [];
  const logRequired = keys.upgradedAt !== null && (lastTs === null || lastTs >= keys.upgradedAt);
  let name = logRequired ? "log_signature" : "region_signatures";
  const nameOf = (key) => (key.purpose === "log" ? "log_signature" : name);
  try {
    for (const sig of parsed.signatures) {
      const key = keys.byNote.get(noteId(sig.name, sig.keyHash));
      if (!key) continue;  // unknown keys are skipped, as c2sp.org/signed-note asks: witnesses' lines among them
      if (!(await verifyDetached(sig.signature, message, key.publicKey))) {
        name = key.purpose === "log" ? "log_signature" : "region_signatures";
        refuse(`the signature by ${key.noteName} (key ${key.keyId}) does not verify`);
      }
      if (!signers.includes(key)) signers.push(key);
    }
    if (!signers.length) {
      const names = [...new Set(parsed.signatures.map((s) => s.name))].sort().join(", ");
      refuse(`signed by no published key (signature lines by ${names})`);
    }
    for (const key of signers) {  // it was signed after its newest entry: no signer may have been retired by then
      if (lastTs !== null && key.validUntil !== null && key.validUntil <= lastTs) {
        name = nameOf(key);
        refuse(`signed by key ${key.keyId} of ${key.purpose === "log" ? "the log" : key.region}, retired at `
          + `${key.validUntil}, before the newest entry it covers (${lastTs})`);
      }
    }
    const logKey = signers.find((k) => k.purpose === "log");
    const regions = [...new Set(signers.filter((k) => k.purpose !== "log").map((k) => k.region))].sort();
    out.logKey = logKey ? logKey.keyId : null;
    out.regions = regions;
    if (logKey) {
      name = "log_signature";
      const also = regions.length ? ` and by regions ${regions.join(", ")}` : "";
      out.signers = pass(name, `signed by the log key ${logKey.keyId}${also}`);
      return;
    }
    if (logRequired) {
      refuse(lastTs === null
        ? "not signed by the log key: since the upgrade to witnessed checkpoints, region keys alone no longer "
          + "vouch for a checkpoint"
        : "not signed by the log key, yet it covers entries written since the upgrade to witnessed checkpoints "
          + `(the log key is valid from ${keys.upgradedAt}, the newest entry is of ${lastTs})`);
    }
    const required = new Set(keys.upgradedAt === null || lastTs === null ? keys.activeRegions : []);
    if (lastTs !== null) for (const region of keys.regionsValidAt(lastTs)) required.add(region);
    const missing = [...required].filter((r) => !regions.includes(r)).sort();
    if (missing.length) {
      refuse(`not cosigned by region${missing.length > 1 ? "s" : ""} ${missing.join(", ")} `
        + `(cosigned by ${regions.join(", ") || "nobody"})`);
    }
    out.signers = pass(name, `cosigned by regions ${regions.join(", ")}, as checkpoints were before the upgrade `
      + "to witnessed checkpoints");
  } catch (e) { out.signers = failed(name, e); }
}

// ledger/cosignature.py cosignatures: a line by a listed witness's key must verify, every one of them.
async function cosignatureChecks(parsed, witnesses, out) {
  for (const { name: witness, cosigner } of witnesses) {
    const lines = parsed.signatures.filter((s) => s.name === cosigner.name && equal(s.keyHash, cosigner.keyHash));
    if (!lines.length) { out.absent.push(witness); continue; }
    let at = null;
    for (const line of lines) {
      const blob = line.signature;  // after the key ID: a u64 big-endian timestamp, then the signature
      const time = blob.length === 72 ? blob.subarray(0, 8).reduce((n, b) => (n << 8n) | BigInt(b), 0n) : -1n;
      const good = time >= 0n && time < 2n ** 63n
        && await verifyDetached(blob.slice(8), utf8(cosignedMessage(parsed.text, time)), cosigner.publicKey);
      if (!good) { at = null; break; }
      at = at ?? time;
    }
    const check = `cosignature:${witness}`, who = `witness ${witness} (${cosigner.name})`;
    if (at === null) {
      out.cosignatures.push(failed(check, new Refusal(`invalid cosignature by ${who}`)));
    } else {
      out.cosigned.push(witness);
      const when = at < 8640000000000n ? new Date(Number(at) * 1000).toISOString() : `time ${at}`;
      out.cosignatures.push(pass(check, `cosigned by ${who} at ${when}`));
    }
  }
}

function outcome(checks, complete, fields) {
  return { ok: complete && checks.length > 0 && checks.every((c) => c.ok), checks, ...fields };
}
const sizeOut = (n) => (typeof n === "bigint" && n <= MAX_SAFE ? Number(n) : n === undefined ? null : String(n));

async function keysAndWitnesses(keysDoc, witnessList, checks) {
  let keys;
  try { keys = await loadKeys(keysDoc); checks.push(keysCheck(keys)); }
  catch (e) { checks.push(failed("keys", e)); return {}; }
  let witnesses = [];
  try {
    witnesses = await loadWitnesses(witnessList);
    if (witnesses.length) checks.push(pass("witness_keys", `witnesses ${witnesses.map((w) => w.name).join(", ")}`));
  } catch (e) { checks.push(failed("witness_keys", e)); }
  return { keys, witnesses };
}

// --- receipts (verify/receipts.py) ----------------------------------------------------------------

const RECEIPT_FIELDS = [["entry", "string"], ["leaf_index", "int"], ["leaf_hash", "string"], ["tree_size", "int"],
  ["inclusion_proof", "list"], ["checkpoint", "string"], ["tlog_proof", "string"]];

async function receiptChecks(input, keysDoc, witnessList) {
  const checks = [], summary = {};
  const { keys, witnesses } = await keysAndWitnesses(keysDoc, witnessList, checks);
  if (!keys) return outcome(checks, false, summary);
  let receipt, index, size;
  try {
    receipt = jsonInput(input, "receipt");
    if (!isObject(receipt)) refuse("a receipt is a JSON object");
    for (const [name, kind] of RECEIPT_FIELDS) {
      const v = receipt[name];
      const fits = kind === "string" ? typeof v === "string" : kind === "int" ? isInt(v) : Array.isArray(v);
      if (!fits) refuse(`${name} is missing or not a ${kind}`);
    }
    [index, size] = [BigInt(receipt.leaf_index), BigInt(receipt.tree_size)];
    if (!(0n <= index && index < size)) refuse(`leaf_index ${index} is not in a tree of size ${size}`);
    if (utf8(receipt.entry) === null) refuse("entry is not valid Unicode text");
    checks.push(pass("receipt_format", `a receipt for entry ${index} in the tree of size ${size}`));
  } catch (e) { checks.push(failed("receipt_format", e)); return outcome(checks, false, summary); }
  const line = utf8(receipt.entry);
  let entry = null;
  try {
    if (receipt.entry.includes("\n")) refuse("the entry must be exactly its canonical bytes, without a newline");
    entry = await checkEntry(receipt.entry, index, keys);
    Object.assign(summary, entrySummary(entry));
    checks.push(pass("entry_signature", entryDetail(entry)));
  } catch (e) { checks.push(failed("entry_signature", e)); }
  const leaf = await leafHashOf(line);
  summary.leafHashB64 = b64encode(leaf);
  checks.push(equal(strictB64(receipt.leaf_hash), leaf)
    ? pass("leaf_hash", `the entry hashes to its leaf ${summary.leafHashB64}`)
    : failed("leaf_hash", new Refusal(`leaf_hash ${show(receipt.leaf_hash)} is not the hash of the entry `
      + `(${summary.leafHashB64})`)));
  const cp = await checkpointChecks(receipt.checkpoint, keys, witnesses, entry ? entry.ts : null);
  checks.push(cp.format);
  if (cp.signers) checks.push(cp.signers);
  let hashes = null;
  try {
    if (receipt.inclusion_proof.length > MAX_PROOF_HASHES) {
      refuse(`an inclusion proof has at most ${MAX_PROOF_HASHES} hashes`);
    }
    hashes = receipt.inclusion_proof.map((item, number) => {
      const raw = typeof item === "string" ? strictB64(item) : null;
      return raw !== null && raw.length === 32 ? raw
        : refuse(`inclusion_proof[${number}] is not a base64 SHA-256 hash`);
    });
    if (cp.checkpoint) {
      if (cp.checkpoint.size !== size) {
        refuse(`tree_size ${size} is not the checkpoint's size ${cp.checkpoint.size}`);
      }
      if (!(await inclusion(leaf, index, size, hashes, cp.checkpoint.root))) {
        refuse(`the inclusion proof does not lead from the entry to the checkpoint's root (tree of size ${size})`);
      }
      checks.push(pass("inclusion", `entry ${index} is in the tree of size ${size}, root ${cp.checkpoint.rootB64}`));
    }
  } catch (e) { checks.push(failed("inclusion", e)); }
  checks.push(...cp.cosignatures);
  if (hashes) {
    try {
      checkTlogProof(receipt.tlog_proof, index, hashes, receipt.checkpoint);
      checks.push(pass("tlog_proof", "the c2sp.org/tlog-proof is the same proof and checkpoint"));
    } catch (e) { checks.push(failed("tlog_proof", e)); }
  }
  Object.assign(summary, { treeSize: sizeOut(size) }, checkpointSummary(cp));
  return outcome(checks, !!(cp.checkpoint && cp.signers && hashes), summary);
}

function checkTlogProof(text, index, hashes, checkpointNote) {  // c2sp.org/tlog-proof
  const split = text.indexOf("\n\n");
  if (split < 0) refuse("tlog_proof has no blank line before its checkpoint");
  const head = text.slice(0, split).split("\n"), noteText = text.slice(split + 2);
  if (head[0] !== TLOG_PROOF_HEADER) refuse(`tlog_proof does not start with ${TLOG_PROOF_HEADER}`);
  let rest = head.slice(1);
  while (rest.length && rest[0].startsWith("extra ")) rest = rest.slice(1);
  const given = rest.length && rest[0].startsWith("index ") ? rest[0].slice("index ".length) : null;
  if (given === null || !DECIMAL.test(given)) refuse("tlog_proof has no `index N` line");
  if (BigInt(given) !== index) refuse(`tlog_proof is for index ${given}, the receipt for ${index}`);
  const listed = rest.slice(1).map(strictB64);
  if (listed.length !== hashes.length || !listed.every((h, i) => equal(h, hashes[i]))) {
    refuse("tlog_proof's hashes are not the receipt's inclusion_proof");
  }
  if (noteText !== checkpointNote) refuse("tlog_proof's checkpoint is not the receipt's checkpoint");
}

// --- the interface ---------------------------------------------------------------------------------

const guarded = (fn, fallback) => async (...args) => {
  try { return await fn(...args); } catch (e) { return fallback(e); }
};
const failure = (e) => ({ ok: false, checks: [failed("internal", e)] });
const entrySummary = (e) => ({ seq: e.seq, kind: e.kind, region: e.region, ts: e.ts, keyId: e.sig.key_id });
const entryDetail = (e) => `entry ${e.seq} (${e.kind}, region ${e.region}, ${e.ts}) is signed by ${e.sig.key_id}`;
const checkpointSummary = (cp) => ({ rootB64: cp.checkpoint ? cp.checkpoint.rootB64 : null, logKey: cp.logKey ?? null,
  regions: cp.regions ?? [], cosigned: cp.cosigned, absent: cp.absent });

export { CHECK_NAMES };

/** {ok, detail, seq?, kind?, region?, ts?, keyId?}: one entry line (one trailing newline allowed), as
 * `vouchers verify` checks each line of an export; `expectedSeq` is its position, if known. */
export const verifyEntrySignature = guarded(async (entryText, keysDoc, expectedSeq = null) => {
  let keys;
  try { keys = await loadKeys(keysDoc); } catch (e) { return { ok: false, detail: `keys: ${reason(e)}` }; }
  try {
    const text = typeof entryText === "string" && entryText.endsWith("\n") ? entryText.slice(0, -1) : entryText;
    if (typeof text !== "string") refuse("an entry is a line of text");
    const entry = await checkEntry(text, expectedSeq === null ? null : toBig(expectedSeq), keys);
    return { ok: true, detail: entryDetail(entry), ...entrySummary(entry) };
  } catch (e) { return { ok: false, detail: reason(e) }; }
}, (e) => ({ ok: false, detail: reason(e) }));

/** RFC 9162 §2.1.3.2: whether `proof` (hashes, leaf to root) leads from the leaf at `index` to `root`. */
export const verifyInclusion = guarded(async (leafHash, index, size, proof, root) => {
  const hashes = Array.isArray(proof) ? proof.map(bytesOf) : [null];
  const [leaf, top] = [bytesOf(leafHash), bytesOf(root)];
  const [i, n] = [toBig(index), toBig(size)];
  return !hashes.includes(null) && i !== null && n !== null && leaf !== null && top !== null
    && inclusion(leaf, i, n, hashes, top);
}, () => false);

/** RFC 9162 §2.1.4.2: whether `proof` shows the tree of `newSize` leaves extends the one of `oldSize`. */
export const verifyConsistency = guarded(async (oldSize, newSize, oldRoot, newRoot, proof) => {
  const hashes = Array.isArray(proof) ? proof.map(bytesOf) : [null];
  const [first, second] = [bytesOf(oldRoot), bytesOf(newRoot)];
  const [a, b] = [toBig(oldSize), toBig(newSize)];
  return !hashes.includes(null) && a !== null && b !== null && first !== null && second !== null
    && consistency(a, b, first, second, hashes);
}, () => false);

/** {ok, size, rootB64, checks, logKey, regions, cosigned, absent}: a checkpoint (GET /ledger/checkpoint).
 * options.lastTs: the ts of the newest entry it covers, when known (see the top of this file). */
export const verifyCheckpoint = guarded(async (noteText, keysDoc, witnesses, options = {}) => {
  const checks = [];
  const { keys, witnesses: listed } = await keysAndWitnesses(keysDoc, witnesses, checks);
  if (!keys) return outcome(checks, false, { size: null, rootB64: null });
  const lastTs = options && typeof options.lastTs === "string" ? options.lastTs : null;
  const cp = await checkpointChecks(noteText, keys, listed, lastTs);
  checks.push(cp.format, ...(cp.signers ? [cp.signers] : []), ...cp.cosignatures);
  const complete = !!(cp.checkpoint && cp.signers);
  return outcome(checks, complete, { size: sizeOut(cp.checkpoint?.size), ...checkpointSummary(cp) });
}, failure);

/** {ok, checks, seq, kind, region, ts, keyId, leafHashB64, treeSize, rootB64, logKey, regions, cosigned,
 * absent}: a receipt (GET /ledger/receipts/{seq}), as `vouchers verify-receipt` checks it. */
export const verifyReceipt = guarded(receiptChecks, failure);

// Smaller pieces, for the console and the tests.
export const leafHash = guarded(async (entry) => leafHashOf(typeof entry === "string" ? utf8(entry) : bytesOf(entry)),
  () => null);
export const merkleRoot = guarded(async (leaves) => {  // MTH over leaf hashes (merkle.py root_from_leaves)
  if (!leaves.length) return sha256(new Uint8Array(0));
  const stack = [];
  for (const leaf of leaves.map(bytesOf)) {
    let level = 0, current = leaf;
    while (stack.length && stack[stack.length - 1][0] === level) {
      current = await nodeHash(stack.pop()[1], current);
      level++;
    }
    stack.push([level, current]);
  }
  let result = stack[stack.length - 1][1];
  for (let k = stack.length - 2; k >= 0; k--) result = await nodeHash(stack[k][1], result);
  return result;
}, () => null);
export const parseNote = guarded(async (note) => {
  const { text, signatures } = parseNoteText(note);
  const lines = signatures.map((s) => ({ name: s.name, keyHashHex: hex(s.keyHash),
    signatureB64: b64encode(s.signature) }));
  return { ok: true, text, signatures: lines };
}, (e) => ({ ok: false, detail: reason(e) }));
export const parseVkey = guarded(async (text, alg = ALG_ED25519) => {
  const key = await parseVerifierKey(text, alg);
  return { ok: true, name: key.name, keyHashHex: hex(key.keyHash), publicKeyB64: b64encode(key.publicKey) };
}, (e) => ({ ok: false, detail: reason(e) }));
export const cosignatureMessage = guarded(async (text, timestamp) => {  // cosignature.py signed_message
  const t = toBig(timestamp);
  const fits = t !== null && t >= 0n && t < 2n ** 63n && typeof text === "string" && text.endsWith("\n");
  return fits ? cosignedMessage(text, t) : null;
}, () => null);
export const publicKeyAccepted = guarded(async (key) => acceptsPublicKey(bytesOf(key)), () => false);
export const signatureVerifies = guarded(async (signature, message, key) => verifyDetached(bytesOf(signature),
  typeof message === "string" ? utf8(message) : bytesOf(message), bytesOf(key)), () => false);
export const base64ToBytes = (text) => strictB64(text);
export const bytesToBase64 = (bytes) => { const raw = bytesOf(bytes); return raw === null ? null : b64encode(raw); };

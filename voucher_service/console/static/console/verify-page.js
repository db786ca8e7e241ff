// The console's verification panels (templates/console/verify_panel.html):
// each `section[data-verify]` checks, on this computer, a receipt
// ("receipt": the entry page's, in #verify-data), the latest checkpoint
// ("checkpoint": its note text, in #verify-data) or a receipt the user
// pastes or opens ("pasted"), with verify.js, against the keys document and
// the witnesses it fetches itself from the public API.
//
// Trust: those keys come from the server being checked, so on the first check
// the log key(s) and the witnesses' vkeys are remembered in localStorage, and a
// later keys document that differs fails the check `pinned_keys` until the
// user chooses to trust the new keys. A user who has the keys from elsewhere
// lists them instead, and then those decide. Nothing the server says about
// validity is used, and no result leaves the page.
//
// Without JavaScript the button stays hidden and the panel's <noscript> says
// what to do instead. No inline script or style: the labels arrive as JSON.
import { verifyCheckpoint, verifyReceipt, parseVkey } from "./verify.js";

const KEYS_URL = "/api/v1/ledger/keys", WITNESSES_URL = "/api/v1/ledger/witnesses";
const PINS_STORE = "vouchers.verify.pinned-keys";     // {[page origin]: {origin, log, witnesses, at}}
const TRUSTED_STORE = "vouchers.verify.trusted-vkeys"; // the text the user listed, as typed
const ALG_COSIGNATURE_V1 = 0x04;
const PLACEHOLDER = /%\((\w+)\)s/g;

function labelsOf(section) {
  const block = section.querySelector("script.verify-labels");
  try { return JSON.parse(block.textContent); } catch { return { checks: {} }; }
}

function sayer(labels) {
  return (key, values = {}) => String(labels[key] ?? key).replace(PLACEHOLDER, (all, name) =>
    (name in values ? String(values[name]) : all));
}

function checkName(labels, name) {
  if (name.startsWith("cosignature:")) {
    const witness = name.slice("cosignature:".length);
    return (labels.checks.cosignature ?? name).replace(PLACEHOLDER, (all, n) => (n === "name" ? witness : all));
  }
  return labels.checks[name] ?? name;
}

// --- storage: the browser may refuse it (private windows, policies); then nothing is remembered -----

function readStore(name) {
  try { return JSON.parse(localStorage.getItem(name) ?? "null"); } catch { return null; }
}
function writeStore(name, value) {
  try {
    if (value === null) localStorage.removeItem(name); else localStorage.setItem(name, JSON.stringify(value));
    return true;
  } catch { return false; }
}
function pinOf() {  // what an earlier check pinned here; a record not of that shape counts as none
  const pins = readStore(PINS_STORE), found = pins && typeof pins === "object" ? pins[location.origin] : null;
  const strings = (list) => Array.isArray(list) && list.every((x) => typeof x === "string");
  return found && typeof found.origin === "string" && strings(found.log) && strings(found.witnesses) ? found : null;
}
function pin(keySet) {
  const pins = readStore(PINS_STORE);
  const all = pins && typeof pins === "object" ? pins : {};
  all[location.origin] = { ...keySet, at: new Date().toISOString() };
  return writeStore(PINS_STORE, all);
}

// --- what the server publishes, and what it is compared with ---------------------------------------

async function fetchText(url) {
  const reply = await fetch(url, { credentials: "omit", cache: "no-store", headers: { Accept: "application/json" } });
  if (!reply.ok) throw new Error(`${url}: HTTP ${reply.status}`);
  return reply.text();
}

// The keys that vouch for the ledger as a whole: its origin, its log key(s) (as C2SP vkeys) and its
// witnesses' vkeys, sorted so that two documents compare by content. Entry keys are not among them: a
// region's key rotates by a signed ledger entry, which the verifier follows itself.
function keySetOf(keysText, witnesses) {
  try {
    const doc = JSON.parse(keysText);
    const log = doc.keys.filter((k) => k.purpose === "log").map((k) => String(k.note_key).trim()).sort();
    const listed = witnesses.map((w) => String(w.vkey).trim()).sort();
    return { origin: String(doc.origin), log, witnesses: listed };
  } catch { return null; }
}
// The pin's time as the server's pages write every time: "2026-03-01 08:00", China
// Standard Time (the footer says so), whatever zone this computer is set to.
const PROGRAMME_TIME = { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
                         hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  try {
    const part = Object.fromEntries(new Intl.DateTimeFormat("en-GB", PROGRAMME_TIME).formatToParts(date)
      .map((p) => [p.type, p.value]));
    return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}`;
  } catch { return date.toISOString(); }
}
const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const sameKeys = (a, b) => a.origin === b.origin && sameList(a.log, b.log) && sameList(a.witnesses, b.witnesses);

// The user's own trusted vkeys: one per line; blank lines and `#` comments are skipped.
async function trustedKeys(text, say) {
  const lines = text.split("\n").map((line, at) => [line.trim(), at + 1]).filter(([l]) => l && !l.startsWith("#"));
  const keys = [], witnesses = [];
  for (const [line, number] of lines) {
    if ((await parseVkey(line)).ok) keys.push(line);
    else if ((await parseVkey(line, ALG_COSIGNATURE_V1)).ok) { keys.push(line); witnesses.push(line); }
    else return { error: say("trusted_bad_line", { line: number }) };
  }
  return { keys, witnesses };
}

// The check `pinned_keys`: {check, repin} where repin, when set, is the key set "Trust the new keys" pins.
async function trustCheck(keySet, trustedText, say) {
  const check = (ok, detail) => ({ name: "pinned_keys", ok, detail });
  if (!keySet) return { check: check(false, say("pinned_unread")) };
  if (trustedText.trim()) {
    const trusted = await trustedKeys(trustedText, say);
    if (trusted.error) return { check: check(false, trusted.error) };
    const missing = [...keySet.log, ...keySet.witnesses].filter((k) => !trusted.keys.includes(k));
    const logKeys = trusted.keys.filter((k) => !trusted.witnesses.includes(k));
    const verdict = missing.length ? check(false, say("trusted_missing", { keys: missing.join(", ") }))
      // A log key listed and none published: checkpoints would be taken on the regions' word alone.
      : logKeys.length && !keySet.log.length ? check(false, say("trusted_no_log", { keys: logKeys.join(", ") }))
        : check(true, say("trusted_ok"));
    return { check: verdict, witnesses: trusted.witnesses };
  }
  const pinned = pinOf();
  if (!pinned) return { check: check(true, say("pinned_first")), first: keySet };  // pinned once the keys pass
  if (sameKeys(pinned, keySet)) return { check: check(true, say("pinned_same", { date: when(pinned.at) })) };
  const shown = (set) => [set.origin, ...set.log, ...set.witnesses].join(", ") || say("none");
  const changed = say("pinned_changed", { date: when(pinned.at), now: shown(keySet), pinned: shown(pinned) });
  return { check: check(false, changed), repin: keySet };
}

// --- the panel --------------------------------------------------------------------------------------

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("unreadable"));
    reader.readAsText(file);
  });
}

function render(list, checks, labels, say) {
  list.replaceChildren(...checks.map((c) => {
    const item = document.createElement("li"), state = document.createElement("strong");
    const name = document.createElement("span"), detail = document.createElement("span");
    item.className = c.ok ? "check-ok" : "check-failed";
    item.dataset.check = c.name;
    state.className = "verify-state";
    state.textContent = c.ok ? say("passed") : say("failed");
    name.className = "verify-name";
    name.textContent = checkName(labels, c.name);
    detail.className = "verify-detail";
    detail.textContent = c.detail ?? "";
    item.append(state, " ", name, " ", detail);
    return item;
  }));
}

function setUp(section) {
  const labels = labelsOf(section), say = sayer(labels), mode = section.dataset.verify;
  const run = section.querySelector(".verify-run"), summary = section.querySelector(".verify-summary");
  const list = section.querySelector(".verify-results"), trustNew = section.querySelector(".verify-trust-new");
  const ownKeys = section.querySelector(".verify-own-keys"), trustedInput = section.querySelector("#trusted-vkeys");
  const text = section.querySelector("#receipt-text"), file = section.querySelector("#receipt-file");
  const show = (message, valid) => {
    summary.textContent = message;
    summary.classList.toggle("verify-valid", valid === true);
    summary.classList.toggle("verify-invalid", valid === false);
  };
  if (!globalThis.crypto || !crypto.subtle) { show(say("no_crypto"), false); return; }
  let reading = Promise.resolve(), repin = null;

  if (file && text) {
    file.addEventListener("change", () => {
      const chosen = file.files && file.files[0];
      if (!chosen) return;
      reading = readFile(chosen).then((content) => { text.value = content; },
        (error) => { show(say("unreadable", { detail: error.message }), false); throw error; });
      reading.catch(() => {});
    });
  }
  if (trustedInput) trustedInput.value = readStore(TRUSTED_STORE) ?? "";
  if (ownKeys && trustedInput && trustedInput.value.trim()) ownKeys.open = true;  // they decide: show them

  // What is checked, as text: null when there is nothing (a message says why).
  async function subject() {
    if (mode === "pasted") {
      try { await reading; } catch (error) { show(say("unreadable", { detail: error.message }), false); return null; }
      if (!text.value.trim()) show(say("no_input"), false);
      return text.value.trim() ? text.value : null;
    }
    const data = section.querySelector("#verify-data").textContent;
    try { return mode === "checkpoint" ? JSON.parse(data) : data; } catch { return data; }
  }

  async function check() {
    // The previous result goes at once, before anything is awaited: what is shown is never stale.
    trustNew.hidden = true;
    repin = null;
    run.disabled = true;
    list.setAttribute("aria-busy", "true");
    list.replaceChildren();
    show(say("running"), null);
    try {
      const input = await subject();
      if (input === null) return;
      let keysText, witnesses;
      try {
        const [k, w] = await Promise.all([fetchText(KEYS_URL), fetchText(WITNESSES_URL)]);
        keysText = k;
        witnesses = JSON.parse(w).witnesses;
        if (!Array.isArray(witnesses)) throw new Error(`${WITNESSES_URL}: no list of witnesses`);
      } catch (error) {
        const detail = say("fetch_failed", { detail: error.message });
        render(list, [{ name: "fetch", ok: false, detail }], labels, say);
        show(say("invalid", { checks: checkName(labels, "fetch") }), false);
        return;
      }
      const trustedText = trustedInput ? trustedInput.value : "";
      writeStore(TRUSTED_STORE, trustedText.trim() ? trustedText : null);
      const trust = await trustCheck(keySetOf(keysText, witnesses), trustedText, say);
      // The user's own witnesses are checked too, even those the server no longer lists.
      const listed = [...witnesses];
      for (const vkey of trust.witnesses ?? []) {
        if (!listed.some((w) => String(w.vkey).trim() === vkey)) listed.push({ vkey });
      }
      const result = mode === "checkpoint" ? await verifyCheckpoint(input, keysText, listed)
        : await verifyReceipt(input, keysText, listed);
      if (trust.first) {  // trust on first use, of a keys document that is itself valid
        const valid = result.checks.some((c) => c.name === "keys" && c.ok);
        trust.check = !valid ? { name: "pinned_keys", ok: false, detail: say("pinned_invalid") }
          : pin(trust.first) ? trust.check : { ...trust.check, detail: say("pinned_unkept") };
      }
      const checks = [trust.check, ...result.checks];
      render(list, checks, labels, say);
      const failedNames = checks.filter((c) => !c.ok).map((c) => checkName(labels, c.name));
      if (result.ok && trust.check.ok) show(say("valid"), true);
      else show(say("invalid", { checks: failedNames.join(", ") || checkName(labels, "internal") }), false);
      repin = trust.repin ?? null;
      trustNew.hidden = !repin;
    } catch (error) {  // a bug here, shown as verify.js shows its own: never a silent "valid"
      render(list, [{ name: "internal", ok: false, detail: String(error && error.message) }], labels, say);
      show(say("invalid", { checks: checkName(labels, "internal") }), false);
    } finally {
      run.disabled = false;
      list.removeAttribute("aria-busy");
    }
  }

  run.addEventListener("click", () => { check(); });
  trustNew.addEventListener("click", () => {
    // What the user saw and chose to trust is pinned, not a document fetched afterwards.
    if (repin) pin(repin);
    check();
  });
  if (ownKeys) ownKeys.hidden = false;
  run.hidden = false;
}

for (const section of document.querySelectorAll("section[data-verify]")) setUp(section);

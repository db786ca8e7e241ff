// The subsidy as the SME types the price (the reservation form of sme_catalogue.py):
// the same arithmetic as form_input.py — yuan text to integer fen, the stricter of the
// item's and the voucher's region's ratio, rounded down, at most what the voucher has
// available — in BigInt, so that no float ever rounds a fen. The server's "Work it out"
// button gives the same figure without JavaScript; the API decides when reserving.

const BASIS_POINTS = 10000n;
const MAX_WHOLE_DIGITS = 10;

// Thousands separators only in threes, as form_input.py: "1,00" is refused, not guessed.
const YUAN = /^([0-9]{1,3}(?:[,，][0-9]{3})+|[0-9]+)(?:\.([0-9]*))?$/;

export function parseYuan(text) {
  const cleaned = String(text ?? "").trim().replace(/^[¥￥]/, "").trim();
  const found = YUAN.exec(cleaned);
  if (!found) return null;
  const whole = found[1].replace(/[,，]/g, ""), fraction = found[2] ?? "";
  if (fraction.length > 2 || whole.replace(/^0+/, "").length > MAX_WHOLE_DIGITS) return null;
  const fen = BigInt(whole) * 100n + BigInt(fraction.padEnd(2, "0"));
  return fen > 0n ? fen : null;
}

export function subsidyFen(feeFen, itemRatioBp, regionRatioBp, availableFen) {
  const ratio = regionRatioBp < itemRatioBp ? regionRatioBp : itemRatioBp;
  const limit = (feeFen * ratio) / BASIS_POINTS;  // BigInt division rounds down
  const paid = limit < availableFen ? limit : availableFen;
  return paid > 0n ? paid : 0n;
}

export function yuan(fen) {
  const sign = fen < 0n ? "-" : "";
  const abs = fen < 0n ? -fen : fen;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${sign}¥${whole}.${(abs % 100n).toString().padStart(2, "0")}`;
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (all, name) => (name in values ? values[name] : all));
}

function start() {
  const form = document.getElementById("reserve-form");
  const textBlock = document.getElementById("subsidy-text");
  if (!form || !textBlock) return;
  const text = JSON.parse(textBlock.textContent);
  const fee = form.querySelector("#f-service_fee_yuan");
  const voucher = form.querySelector("#f-voucher_id");
  const output = form.querySelector("#subsidy");
  const itemRatio = BigInt(form.dataset.itemRatioBp);

  function update() {
    if (fee.value.trim() === "") { output.textContent = text.prompt; return; }
    const feeFen = parseYuan(fee.value);
    const option = voucher.selectedOptions[0];
    if (feeFen === null || !option) { output.textContent = text.invalid; return; }
    const paid = subsidyFen(feeFen, itemRatio, BigInt(option.dataset.regionRatioBp),
                            BigInt(option.dataset.availableFen));
    output.textContent = fill(text.pays, { subsidy: yuan(paid), fee: yuan(feeFen), rest: yuan(feeFen - paid) });
  }

  fee.addEventListener("input", update);
  voucher.addEventListener("change", update);
  if (fee.value.trim() !== "") update();
}

start();

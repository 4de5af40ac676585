// What a peer's PLC shows and what it produced: the ground truth, kept in a JSON state file the tests read.
import fs from "node:fs";

const INTEGER_BITS = { int16: 16, uint16: 16, int32: 32, uint32: 32, int64: 64, uint64: 64 };
const SPELLINGS = { double: "float64", float: "float32" };

// spec: {type, start: decimal string, decimals (meters)}; saved: this counter's entry of the state file, if any.
// An integer counter wraps as its type does; a meter (float32/float64) climbs in steps of 10^-decimals.
export function counter(spec, saved) {
  const type = SPELLINGS[spec.type.toLowerCase()] ?? spec.type.toLowerCase();
  const start = saved?.start ?? String(spec.start);
  const bits = INTEGER_BITS[type];
  if (bits !== undefined) {
    const wrap = type.startsWith("int") ? (v) => BigInt.asIntN(bits, v) : (v) => BigInt.asUintN(bits, v);
    let value = BigInt(saved?.value ?? start);
    let produced = BigInt(saved?.produced ?? 0);
    return {
      type,
      produce(units) { value = wrap(value + BigInt(units)); produced += BigInt(units); },
      shown: () => value,
      json: () => ({ type, start, value: String(value), produced: String(produced) }),
    };
  }
  const decimals = spec.decimals;
  const steps = (text) => BigInt(Number(text).toFixed(decimals).replace(".", ""));
  const text = (n) => {
    const digits = (n < 0n ? -n : n).toString().padStart(decimals + 1, "0");
    return `${n < 0n ? "-" : ""}${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
  };
  let value = steps(saved?.value ?? start);
  let produced = steps(saved?.produced ?? "0");
  return {
    type,
    produce(units) { value += BigInt(units); produced += BigInt(units); },
    // the double nearest the decimal: both integers are exact, and one division rounds once
    shown: () => Number(value) / 10 ** decimals,
    json: () => ({ type, start, value: text(value), produced: text(produced) }),
  };
}

export function savedState(file) {
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : {};
}

// counters: Map id -> {state}; written whole and renamed into place, so a reader never sees half a file
export function saveState(file, counters) {
  const entries = Object.fromEntries([...counters].map(([id, { state }]) => [id, state.json()]));
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(entries));
  fs.renameSync(`${file}.tmp`, file);
}

// A Modbus TCP server from modbus-serial (not ours), for the third-party peer tests. Usage: node modbus_peer.mjs '<json>'
// config: {port, units: [id...], holding: [[first, count]...], input: [[first, count]...], state: file,
//          counters: [{id, unit, table: "holding" | "input", address, type, byte_order, start, decimals?}]}
// Only the listed addresses exist: a read across any other is refused with exception 2, as a strict device
// does; an unknown unit gets no answer. A counter is written in its type (uint16 int16 uint32 int32 float32) and
// byte order (ABCD, CDAB, BADC, DCBA; A the most significant byte), encoded here, not by the code under test.
// Commands, one JSON line each on stdin, answered "ok": {"produce": id, "units": n}; the ground truth is the
// state file, as in opcua_peer.mjs. "ready" once listening; ends at stdin's end.
import readline from "node:readline";
import ModbusRTU from "modbus-serial";
import { counter, saveState, savedState } from "./peer_state.mjs";

const config = JSON.parse(process.argv[2]);
const memory = new Map(); // `${unit}/${table}/${address}` -> word
const exists = (table, address) => config[table].some(([first, count]) => address >= first && address < first + count);
const refused = () => Object.assign(new Error("illegal data address"), { modbusErrorCode: 0x02 });

function reader(table) {
  return (address, unit) => {
    if (!config.units.includes(unit)) return new Promise(() => {}); // absent: no answer
    if (!exists(table, address)) throw refused();
    return memory.get(`${unit}/${table}/${address}`) ?? 0;
  };
}

const ORDERS = { ABCD: [0, 1, 2, 3], CDAB: [2, 3, 0, 1], BADC: [1, 0, 3, 2], DCBA: [3, 2, 1, 0] };

function words(type, order, value) {
  const big = Buffer.alloc(type.endsWith("16") ? 2 : 4);
  if (type === "float32") big.writeFloatBE(value);
  else if (type === "int32") big.writeInt32BE(Number(value));
  else if (type === "uint32") big.writeUInt32BE(Number(value));
  else if (type === "int16") big.writeInt16BE(Number(value));
  else big.writeUInt16BE(Number(value));
  const bytes = big.length === 2 ? (order === "BADC" || order === "DCBA" ? [big[1], big[0]] : [big[0], big[1]])
    : ORDERS[order].map((i) => big[i]);
  return Array.from({ length: bytes.length / 2 }, (_, i) => (bytes[2 * i] << 8) | bytes[2 * i + 1]);
}

const saved = savedState(config.state);
const counters = new Map();
for (const spec of config.counters) {
  const state = counter(spec, saved[spec.id]);
  const show = () => words(state.type, spec.byte_order ?? "ABCD", state.shown())
    .forEach((word, i) => memory.set(`${spec.unit}/${spec.table}/${spec.address + i}`, word));
  show();
  counters.set(spec.id, { state, show });
}
saveState(config.state, counters);

const vector = { getHoldingRegister: reader("holding"), getInputRegister: reader("input") };
// unitID 255: every unit id reaches the vector, which answers only the configured ones
const server = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port: config.port, unitID: 255 });
server.on("initialized", () => console.log("ready"));
server.on("socketError", (error) => console.error(error.message));

for await (const line of readline.createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  const { state, show } = counters.get(command.produce);
  state.produce(command.units);
  show();
  saveState(config.state, counters);
  console.log("ok");
}
server.close(() => process.exit(0));

// A Modbus TCP server from modbus-serial (not ours), for tests/peers. Usage: node modbus_peer.mjs '<json>'
// config: {port, units: [id...], holding: [[first, count]...], input: [[first, count]...]}: only those
// addresses exist, a read across any other is refused with exception 2, as a strict device does;
// an unknown unit gets no answer. Commands on stdin: {"unit", "table", "address", "words"}, answered "ok".
import readline from "node:readline";
import ModbusRTU from "modbus-serial";

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
const vector = {
  getHoldingRegister: reader("holding"),
  getInputRegister: reader("input"),
};
// unitID 255: every unit id reaches the vector, which answers only the configured ones
const server = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port: config.port, unitID: 255 });
server.on("initialized", () => console.log("ready"));
server.on("socketError", (error) => console.error(error.message));

for await (const line of readline.createInterface({ input: process.stdin })) {
  const { unit, table, address, words } = JSON.parse(line);
  words.forEach((word, i) => memory.set(`${unit}/${table}/${address + i}`, word));
  console.log("ok");
}
server.close(() => process.exit(0));

// An OPC UA server from node-opcua (not ours), for the third-party peer tests. Usage: node opcua_peer.mjs '<json>'
// config: {port, namespaces: [uri...], plc: uri, pki: folder, security: {user, password} | null, state: file,
//          variables: [{id: 1001 | "Name", type: "Int16", start: "32760", decimals?: 4}]}
// A variable is a PLC counter of its type: it wraps as that type does (an Int16 goes 32767 -> -32768). A Double
// with `decimals` is a meter: it climbs in steps of 10^-decimals, so its values are exact decimals.
// Commands, one JSON line each on stdin, answered "ok": {"produce": id, "units": n}. "ready" once listening.
// The ground truth is the state file, rewritten before each "ok": per variable its start, the value it shows
// and what it produced, as decimal strings. A server started on an existing state file goes on from it (a PLC
// restart keeps its counters), so a restart may register its namespaces in another order. Ends at stdin's end.
import readline from "node:readline";
import {
  DataType, MessageSecurityMode, OPCUACertificateManager, OPCUAServer, SecurityPolicy, Variant, VariantArrayType,
} from "node-opcua";
import { counter, saveState, savedState } from "./peer_state.mjs";

const config = JSON.parse(process.argv[2]);
const secured = config.security != null;
// both certificate stores in the test's folder (node-opcua's default for users' is one in $HOME, shared)
const certificates = (folder) => new OPCUACertificateManager({ rootFolder: folder, automaticallyAcceptUnknownCertificate: true });
const server = new OPCUAServer({
  port: config.port,
  resourcePath: "/peer",
  serverCertificateManager: certificates(config.pki),
  userCertificateManager: certificates(`${config.pki}/users`),
  securityModes: secured ? [MessageSecurityMode.SignAndEncrypt] : [MessageSecurityMode.None],
  securityPolicies: secured ? [SecurityPolicy.Basic256Sha256] : [SecurityPolicy.None],
  allowAnonymous: !secured,
  userManager: secured
    ? { isValidUser: (user, password) => user === config.security.user && password === config.security.password }
    : undefined,
});
await server.initialize();
const addressSpace = server.engine.addressSpace;
for (const uri of config.namespaces) addressSpace.registerNamespace(uri);
const namespace = addressSpace.getNamespace(config.plc);

// node-opcua carries 64-bit integers as [high, low] 32-bit words
const wire = (type, value) => (type === "UInt64" || type === "Int64")
  ? [Number(BigInt.asUintN(64, value) >> 32n), Number(BigInt.asUintN(64, value) & 0xffffffffn)]
  : (type === "Double" || type === "Float" ? value : Number(value));
const saved = savedState(config.state);
const counters = new Map();
for (const spec of config.variables) {
  const state = counter(spec, saved[String(spec.id)]);
  const variable = namespace.addVariable({
    organizedBy: addressSpace.rootFolder.objects,
    browseName: String(spec.id),
    nodeId: typeof spec.id === "number" ? `i=${spec.id}` : `s=${spec.id}`,
    dataType: spec.type,
  });
  const show = () => variable.setValueFromSource(
    new Variant({ dataType: DataType[spec.type], arrayType: VariantArrayType.Scalar, value: wire(spec.type, state.shown()) }),
    undefined, new Date());
  show();
  counters.set(String(spec.id), { state, show });
}
saveState(config.state, counters);
await server.start();
console.log("ready");

for await (const line of readline.createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  const { state, show } = counters.get(String(command.produce));
  state.produce(command.units);
  show();
  saveState(config.state, counters);
  console.log("ok");
}
await server.shutdown(0);
process.exit(0);

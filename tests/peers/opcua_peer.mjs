// An OPC UA server from node-opcua (not ours), for tests/peers. Usage: node opcua_peer.mjs '<json>'
// config: {port, namespaces: [uri...], plc: uri, variables: [{id: 1001 | "Name", type: "Int16", value}],
//          security: {user, password} | null, pki: folder}
// Then one JSON command per stdin line, {"set": id, "value": v}, answered "ok"; "ready" once listening.
import readline from "node:readline";
import {
  DataType, MessageSecurityMode, OPCUACertificateManager, OPCUAServer, SecurityPolicy, Variant, VariantArrayType,
} from "node-opcua";

const config = JSON.parse(process.argv[2]);
const secured = config.security != null;
const serverCertificateManager = new OPCUACertificateManager({
  rootFolder: config.pki, automaticallyAcceptUnknownCertificate: true,
});
const server = new OPCUAServer({
  port: config.port,
  resourcePath: "/peer",
  serverCertificateManager,
  securityModes: secured ? [MessageSecurityMode.SignAndEncrypt] : [MessageSecurityMode.None],
  securityPolicies: secured ? [SecurityPolicy.Basic256Sha256] : [SecurityPolicy.None],
  allowAnonymous: !secured,
  userManager: secured ? { isValidUser: (user, password) => user === config.security.user && password === config.security.password } : undefined,
});
await server.initialize();
const addressSpace = server.engine.addressSpace;
for (const uri of config.namespaces) addressSpace.registerNamespace(uri);
const namespace = addressSpace.getNamespace(config.plc);

// node-opcua carries 64-bit integers as [high, low] 32-bit words
const wire = (type, value) => (type === "UInt64" || type === "Int64")
  ? [Number(BigInt.asUintN(64, BigInt(value)) >> 32n), Number(BigInt.asUintN(64, BigInt(value)) & 0xffffffffn)]
  : value;
const variables = new Map();
for (const { id, type, value } of config.variables) {
  const variable = namespace.addVariable({
    organizedBy: addressSpace.rootFolder.objects,
    browseName: String(id),
    nodeId: typeof id === "number" ? `i=${id}` : `s=${id}`,
    dataType: type,
  });
  variable.setValueFromSource(new Variant({ dataType: DataType[type], arrayType: VariantArrayType.Scalar, value: wire(type, value) }));
  variables.set(String(id), { variable, type });
}
await server.start();
console.log("ready");

for await (const line of readline.createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  const { variable, type } = variables.get(String(command.set));
  variable.setValueFromSource(new Variant({ dataType: DataType[type], arrayType: VariantArrayType.Scalar, value: wire(type, command.value) }), undefined, new Date());
  console.log("ok");
}
await server.shutdown(0);

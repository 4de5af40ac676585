// Renders the tiles of a /board/data snapshot (argv[2], a JSON file) with the board's own renderTile, in a
// stand-in DOM just big enough for it (no browser here), and prints per machine what a tile shows of its
// connection: the data attribute, the badge (text and hover title) and the detail line.
"use strict";
const fs = require("fs");
const vm = require("vm");

function element(tag) {
  return { tag, children: [], attributes: {}, setAttribute(name, value) { this.attributes[name] = value; },
    append(...children) { this.children.push(...children); } };
}
const page = {
  document: { createElement: element, getElementById: () => element("div"), body: { dataset: {}, classList: { toggle() {} } } },
  window: { location: { hash: "", pathname: "/board", search: "" } },
  localStorage: { getItem: () => null, setItem() {}, removeItem() {} },
  history: { replaceState() {} }, setInterval() {}, setTimeout() {},
};
vm.createContext(page);
// the page's scripts in the order index.html loads them; board.js then asks for a key: no fetch
for (const script of ["common.js", "board.js"]) {
  vm.runInContext(fs.readFileSync(`${__dirname}/../../dashboards/static/${script}`, "utf8"), page);
}
const renderTile = vm.runInContext("renderTile", page);

const find = (node, cssClass) => {
  if (!node || typeof node !== "object") return null;
  if (String(node.className).split(" ").includes(cssClass)) return node;
  for (const child of node.children || []) {
    const found = find(child, cssClass);
    if (found) return found;
  }
  return null;
};
const shown = {};
for (const line of JSON.parse(fs.readFileSync(process.argv[2], "utf8")).lines) {
  for (const tile of line.machines) {
    const rendered = renderTile(tile), badge = find(rendered, "connection"), detail = find(rendered, "connection-detail");
    shown[tile.machine_id] = { attribute: rendered.attributes["data-connection"], badge: badge && badge.textContent,
      title: badge && badge.title, badge_class: badge && badge.className, detail: detail && detail.textContent };
  }
}
process.stdout.write(JSON.stringify(shown));

// What the board's pages share: building elements (every string from the server goes in as text, never as
// HTML) and the key. The data needs a read-only key (`mes keys create hall-tv --role viewer`): opened once as
// /board#key=<token> (a fragment never reaches the server or its logs), or typed into the form the page shows
// when it has none; kept in this browser's localStorage and sent as `Authorization: Bearer <token>`.
"use strict";

const KEY_STORE = "mes.board.key";

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function keptKey() {
  const given = /(?:^#|&)key=([^&]+)/.exec(window.location.hash);
  if (given) {
    localStorage.setItem(KEY_STORE, decodeURIComponent(given[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search); // off the screen and history
  }
  return localStorage.getItem(KEY_STORE);
}

function authorized() {
  const key = keptKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// No key, or one the server refuses (revoked, mistyped): ask for one; the board starts once it is given.
function askForKey(refused, then) {
  if (refused) localStorage.removeItem(KEY_STORE);
  const form = document.getElementById("key-form");
  document.getElementById("key-refused").hidden = !refused;
  form.hidden = false;
  form.onsubmit = (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORE, document.getElementById("key").value.trim());
    form.hidden = true;
    then();
  };
}


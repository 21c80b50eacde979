// DOM building without HTML parsing: every string becomes a text node or an attribute value, so a hostile
// name (`<img src=x onerror=...>`) is shown as text and never becomes markup. innerHTML is never used.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = String(value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

// A table that stacks into label / value rows on narrow screens (CSS `.stack`, labels from data-label).
// columns: [{ label, num }]; rows: [{ data, cells: [Node | string] }].
export function stackTable({ id, caption, columns, rows, cls = "" }) {
  return el(
    "table",
    { id, class: `stack ${cls}`.trim() },
    el("caption", { class: "visually-hidden", text: caption }),
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.num ? "num" : null, text: c.label })))),
    el(
      "tbody",
      {},
      rows.map((row) =>
        el(
          "tr",
          { dataset: row.data || {} },
          row.cells.map((cell, i) =>
            el("td", { class: columns[i].num ? "num" : null, "data-label": columns[i].label, ...(row.attrs?.[i] || {}) }, Array.isArray(cell) ? el("span", {}, cell) : cell),
          ),
        ),
      ),
    ),
  );
}

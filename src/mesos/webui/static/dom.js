// Small DOM and formatting helpers, so views can be written without a framework.

/** An element: h("a", {href: "#/"}, "home"). `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A link to a hash route; the parts are URL-encoded, as ids may hold any character. */
export function link(parts, text) {
  return h("a", { href: "#/" + parts.map(encodeURIComponent).join("/") }, text);
}

/** A table with a header row; `rows` are arrays of cells. */
export function table(headers, rows, empty = "None.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", {}, name)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}

/** A definition list from [term, value] pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

/** A labelled used/total bar for one resource. */
export function bar(name, used, total, format = num) {
  const pct = total > 0 ? Math.min(100, (100 * used) / total) : 0;
  return h("div", { class: "bar", "data-resource": name },
    h("div", { class: "bar-label" }, h("span", {}, name),
      h("span", {}, `${format(used)} / ${format(total)}`, total > 0 ? ` (${pct.toFixed(0)}%)` : "")),
    h("div", { class: "bar-track" }, h("div", { class: "bar-fill", style: `width:${pct}%` })));
}

export function num(value) {
  const n = Number(value || 0);
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

/** Megabytes (how Mesos counts mem and disk) for people. */
export function mb(value) {
  const n = Number(value || 0);
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} TB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} GB`;
  return `${num(n)} MB`;
}

export function bytes(value) {
  const n = Number(value || 0);
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Epoch seconds as local time; blank when unknown. */
export function time(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleString();
}

/** A task state as a coloured badge (TASK_RUNNING -> "RUNNING"). */
export function stateBadge(state) {
  const short = String(state || "").replace(/^TASK_/, "");
  return h("span", { class: `badge state-${short.toLowerCase()}` }, short);
}

export function yesNo(value) {
  return h("span", { class: value ? "yes" : "no" }, value ? "yes" : "no");
}

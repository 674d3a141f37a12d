// A task's sandbox: a directory listing and a live tail of one file (stdout at first).
//
// Unlike the other views this one keeps state between polls: the file being followed
// and the byte offset read up to, so each poll appends only what the file has grown by.

import { agentBase, jsonp } from "./api.js";
import { bytes, h, link, table, time } from "./dom.js";
import { findTask, index } from "./model.js";

const TAIL_BYTES = 50000; // how much of an existing file to show when following starts
const CHUNK = 65536; // one /files/read; the agent caps a read at 16 pages anyway
const MAX_READS = 16; // reads per poll, so one poll cannot run forever on a fast writer
const MAX_CHARS = 1000000; // the log pane keeps this much text, dropping the oldest

const utf8 = new TextEncoder();

/** The directory of the executor that ran the task, found in the agent's /state. */
async function sandboxOf(base, task) {
  const agentState = await jsonp(`${base}/state`);
  for (const f of [...(agentState.frameworks || []), ...(agentState.completed_frameworks || [])]) {
    if (f.id !== task.framework_id) continue;
    for (const e of [...(f.executors || []), ...(f.completed_executors || [])]) {
      const tasks = [...(e.tasks || []), ...(e.queued_tasks || []), ...(e.completed_tasks || [])];
      if (tasks.some((t) => t.id === task.id)) return e.directory;
    }
  }
  return null;
}

export function sandbox(taskId) {
  const heading = h("h2", {}, "Sandbox of task ", link(["tasks", taskId], taskId));
  const where = h("div", { class: "crumbs" });
  const listing = h("div", { id: "listing" });
  const following = h("h3", { id: "following" });
  const note = h("div", { class: "note", id: "tail-status" });
  const log = h("pre", { class: "log", id: "log" });
  const el = h("section", {}, heading, where, listing, following, note, log);

  let base = null; // the agent's URL
  let root = null; // the sandbox directory
  let dir = null; // the directory listed
  let file = null; // the file followed
  let offset = -1; // bytes of `file` shown so far; -1: not started
  let generation = 0; // bumped when `file` changes, so a read in flight is dropped
  let busy = false;

  function follow(path) {
    file = path;
    offset = -1;
    generation += 1;
    log.textContent = "";
    following.textContent = `Following ${path.slice(root.length + 1) || path}`;
    tail().catch(showError);
  }

  function browse(path) {
    dir = path;
    refreshListing().catch(showError);
  }

  function showError(error) {
    note.textContent = String(error.message || error);
    note.classList.add("error");
  }

  async function refreshListing() {
    const entries = await jsonp(`${base}/files/browse`, { path: dir });
    const crumbs = [h("a", { href: "#", onclick: (e) => { e.preventDefault(); browse(root); } }, "sandbox")];
    let at = root;
    for (const part of dir.slice(root.length).split("/").filter(Boolean)) {
      at = `${at}/${part}`;
      const target = at;
      crumbs.push(" / ", h("a", { href: "#", onclick: (e) => { e.preventDefault(); browse(target); } }, part));
    }
    where.replaceChildren(...crumbs);
    listing.replaceChildren(table(["Name", "Mode", "Size", "Modified"], entries.map((entry) => {
      const name = entry.path.split("/").pop();
      const isDir = entry.mode.startsWith("d");
      const open = (e) => { e.preventDefault(); if (isDir) browse(entry.path); else follow(entry.path); };
      const anchor = h("a", { href: "#", class: isDir ? "dir" : "file", "data-name": name, onclick: open },
        name + (isDir ? "/" : ""));
      return [anchor, entry.mode, isDir ? "" : bytes(entry.size), time(entry.mtime)];
    }), "Empty directory."));
  }

  /** Append what `file` has grown by since the last read. */
  async function tail() {
    if (busy || !file) return;
    busy = true;
    const mine = generation;
    try {
      if (offset < 0) {
        const end = await jsonp(`${base}/files/read`, { path: file, offset: -1 });
        if (mine !== generation) return;
        offset = Math.max(0, end.offset - TAIL_BYTES);
      }
      for (let i = 0; i < MAX_READS; i += 1) {
        const chunk = await jsonp(`${base}/files/read`, { path: file, offset, length: CHUNK });
        if (mine !== generation) return;
        if (chunk.offset < offset) {
          // The file shrank (truncated or replaced): start over from its end.
          offset = -1;
          log.textContent = "";
          return;
        }
        if (!chunk.data) break;
        append(chunk.data);
        offset = chunk.offset + utf8.encode(chunk.data).length;
      }
      note.classList.remove("error");
      note.textContent = `${bytes(offset)} read, updated ${new Date().toLocaleTimeString()}`;
      log.dataset.offset = String(offset);
    } finally {
      busy = false;
    }
  }

  function append(text) {
    // Keep following the end only if the reader was already there.
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(text);
    if (log.textContent.length > MAX_CHARS) log.textContent = log.textContent.slice(-MAX_CHARS);
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  async function update(ctx) {
    if (root === null) {
      const found = findTask(ctx.state, taskId);
      if (!found) {
        note.textContent = `The master does not know task ${taskId}.`;
        return;
      }
      const agent = index(ctx.state).agents.get(found.task.slave_id);
      if (!agent) {
        note.textContent = `The agent of task ${taskId} is not registered.`;
        return;
      }
      base = agentBase(agent);
      const directory = await sandboxOf(base, found.task);
      if (!directory) {
        note.textContent = `Agent ${agent.pid} has no sandbox for task ${taskId} (yet).`;
        return;
      }
      root = directory;
      dir = directory;
      follow(`${directory}/stdout`);
    }
    await Promise.all([refreshListing(), tail()]);
  }

  // An agent that cannot be reached is said in the page, and tried again next poll.
  const guarded = (ctx) => update(ctx).catch(showError);

  return { el, update: guarded };
}

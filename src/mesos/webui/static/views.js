// The pages that are redrawn whole from each poll: a view is a function of the latest
// master state (and, for roles and maintenance, of the operator calls it makes).

import { operator } from "./api.js";
import { bar, facts, h, link, mb, num, stateBadge, table, time, yesNo } from "./dom.js";
import { countByState, findTask, index, isTerminal, rolesOf } from "./model.js";

const RESOURCES = [["cpus", num], ["mem", mb], ["disk", mb], ["gpus", num]];
const MAIN_STATES = ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING",
  "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_UNREACHABLE"];

/** Wrap a render function as a view whose section is redrawn on every update. */
export function simple(render) {
  return (...params) => {
    const el = h("section");
    return {
      el,
      async update(ctx) {
        let content;
        try {
          content = await render(ctx, ...params);
        } catch (error) {
          content = h("div", { class: "panel error" }, String(error.message || error));
        }
        el.replaceChildren(content);
      },
    };
  };
}

function page(title, ...children) {
  return h("div", {}, h("h2", {}, title), ...children);
}

function notFound(what, id) {
  return page(`No such ${what}`, h("p", { class: "panel" }, `The master does not know ${what} ${id}.`));
}

/** Agents are told apart by host and port: several may run on one host. */
export function agentName(a) {
  return `${a.hostname}:${a.port}`;
}

function taskTable(ctx, entries, empty = "No tasks.") {
  const { agents } = index(ctx.state);
  return table(["ID", "Name", "State", "Framework", "Agent", "CPUs", "Mem", ""],
    entries.map(({ task, framework }) => {
      const agent = agents.get(task.slave_id);
      const res = task.resources || {};
      return [link(["tasks", task.id], task.id), task.name, stateBadge(task.state),
        link(["frameworks", framework.id], framework.name || framework.id),
        agent ? link(["agents", agent.id], agentName(agent)) : task.slave_id,
        num(res.cpus), mb(res.mem), link(["tasks", task.id, "sandbox"], "sandbox")];
    }), empty);
}

function sumOver(items, key, name) {
  return items.reduce((total, item) => total + Number((item[key] || {})[name] || 0), 0);
}

/** Cluster totals from /metrics/snapshot, or summed from the agents when it lacks them. */
function clusterResource(ctx, name) {
  const m = ctx.metrics || {};
  if (`master/${name}_total` in m) return [m[`master/${name}_used`] || 0, m[`master/${name}_total`]];
  const agents = ctx.state.slaves || [];
  return [sumOver(agents, "used_resources", name), sumOver(agents, "resources", name)];
}

function resourceText(res = {}) {
  const parts = RESOURCES.filter(([name]) => Number(res[name] || 0) > 0)
    .map(([name, format]) => `${name} ${format(res[name])}`);
  return parts.join(", ") || "none";
}

export const dashboard = simple((ctx) => {
  const { state } = ctx;
  const agents = state.slaves || [];
  const frameworks = state.frameworks || [];
  const counts = countByState(state);
  const states = [...new Set([...MAIN_STATES, ...Object.keys(counts)])];
  const live = index(state).tasks.filter(({ task }) => !isTerminal(task.state));
  return page(state.cluster ? `Cluster ${state.cluster}` : "Cluster",
    h("div", { class: "cards" },
      h("div", { class: "card", id: "resources" }, h("h3", {}, "Resources used"),
        RESOURCES.map(([name, format]) => bar(name, ...clusterResource(ctx, name), format))),
      h("div", { class: "card", id: "counts" }, h("h3", {}, "Counts"), facts([
        ["Agents", `${agents.filter((a) => a.active).length} active of ${agents.length}`
          + (state.unreachable_slaves ? `, ${state.unreachable_slaves} unreachable` : "")],
        ["Frameworks", `${frameworks.filter((f) => f.active).length} active of ${frameworks.length}`
          + `, ${(state.completed_frameworks || []).length} completed`],
        ["Tasks", `${live.length} live, ${index(state).tasks.length} known`],
      ])),
      h("div", { class: "card", id: "task-states" }, h("h3", {}, "Tasks by state"),
        h("dl", { class: "facts" }, states.map((s) => [
          h("dt", {}, stateBadge(s)), h("dd", { "data-state": s }, String(counts[s] || 0))])))),
    h("h3", {}, "Master"),
    facts([["ID", state.id], ["PID", state.pid], ["Version", state.version],
      ["Started", time(state.start_time)], ["Leader", state.leader || ""]]),
    h("h3", {}, "Live tasks"), taskTable(ctx, live.slice(0, 50)));
});

function frameworkRows(ctx, frameworks) {
  const { tasks } = index(ctx.state);
  return frameworks.map((f) => {
    const used = f.used_resources || {};
    const live = tasks.filter((t) => t.framework === f && !isTerminal(t.task.state)).length;
    return [link(["frameworks", f.id], f.id), f.name, rolesOf(f), f.user, yesNo(f.active),
      String(live), num(used.cpus), mb(used.mem), time(f.registered_time)];
  });
}

const FRAMEWORK_COLUMNS = ["ID", "Name", "Roles", "User", "Active", "Tasks", "CPUs", "Mem", "Registered"];

export const frameworks = simple((ctx) => page("Frameworks",
  table(FRAMEWORK_COLUMNS, frameworkRows(ctx, ctx.state.frameworks || []), "No frameworks."),
  h("h3", {}, "Completed frameworks"),
  table(FRAMEWORK_COLUMNS, frameworkRows(ctx, ctx.state.completed_frameworks || []), "None.")));

export const framework = simple((ctx, id) => {
  const f = index(ctx.state).frameworks.get(id);
  if (!f) return notFound("framework", id);
  const mine = index(ctx.state).tasks.filter((t) => t.framework === f);
  return page(`Framework ${f.name || f.id}`,
    facts([["ID", f.id], ["Name", f.name], ["Roles", rolesOf(f)], ["User", f.user],
      ["Principal", f.principal || ""], ["Hostname", f.hostname], ["Active", yesNo(f.active)],
      ["Connected", yesNo(f.connected)], ["Registered", time(f.registered_time)],
      ["Used", resourceText(f.used_resources)], ["Offered", resourceText(f.offered_resources)],
      ["Web UI", f.webui_url ? h("a", { href: f.webui_url }, f.webui_url) : ""]]),
    h("h3", {}, "Tasks"), taskTable(ctx, mine.filter((t) => !isTerminal(t.task.state))),
    h("h3", {}, "Completed tasks"), taskTable(ctx, mine.filter((t) => isTerminal(t.task.state)), "None."));
});

export const agents = simple((ctx) => {
  const { tasks } = index(ctx.state);
  return page("Agents", table(
    ["ID", "Host", "Active", "CPUs", "Mem", "Disk", "GPUs", "Tasks", "Registered"],
    (ctx.state.slaves || []).map((a) => {
      const used = a.used_resources || {};
      const total = a.resources || {};
      const live = tasks.filter((t) => t.task.slave_id === a.id && !isTerminal(t.task.state)).length;
      return [link(["agents", a.id], a.id), agentName(a), yesNo(a.active),
        `${num(used.cpus)} / ${num(total.cpus)}`, `${mb(used.mem)} / ${mb(total.mem)}`,
        `${mb(used.disk)} / ${mb(total.disk)}`, `${num(used.gpus)} / ${num(total.gpus)}`,
        String(live), time(a.registered_time)];
    }), "No agents are registered."));
});

export const agent = simple((ctx, id) => {
  const a = index(ctx.state).agents.get(id);
  if (!a) return notFound("agent", id);
  const mine = index(ctx.state).tasks.filter((t) => t.task.slave_id === id);
  const attributes = Object.entries(a.attributes || {}).map(([k, v]) => [k, String(v)]);
  const reserved = Object.entries(a.reserved_resources || {}).map(([role, r]) => [role, resourceText(r)]);
  return page(`Agent ${agentName(a)}`,
    facts([["ID", a.id], ["PID", a.pid], ["Active", yesNo(a.active)],
      ["Deactivated", yesNo(a.deactivated)], ["Version", a.version || ""],
      ["Registered", time(a.registered_time)]]),
    h("div", { class: "card" }, h("h3", {}, "Resources used"),
      RESOURCES.map(([name, format]) => bar(name, Number((a.used_resources || {})[name] || 0),
        Number((a.resources || {})[name] || 0), format))),
    h("h3", {}, "Reserved"), table(["Role", "Resources"], reserved, "No reservations."),
    h("h3", {}, "Attributes"), table(["Name", "Value"], attributes, "No attributes."),
    h("h3", {}, "Tasks"), taskTable(ctx, mine.filter((t) => !isTerminal(t.task.state))),
    h("h3", {}, "Completed tasks"), taskTable(ctx, mine.filter((t) => isTerminal(t.task.state)), "None."));
});

export const task = simple((ctx, id) => {
  const found = findTask(ctx.state, id);
  if (!found) return notFound("task", id);
  const { task: t, framework: f } = found;
  const a = index(ctx.state).agents.get(t.slave_id);
  return page(`Task ${t.id}`,
    facts([["ID", t.id], ["Name", t.name], ["State", stateBadge(t.state)],
      ["Framework", link(["frameworks", f.id], f.name || f.id)],
      ["Agent", a ? link(["agents", a.id], agentName(a)) : t.slave_id],
      ["Executor", t.executor_id || "(command executor)"], ["Role", t.role || ""],
      ["Resources", resourceText(t.resources)], ["Sandbox", link(["tasks", t.id, "sandbox"], "browse")]]),
    h("h3", {}, "Status updates"),
    table(["State", "Time", "Healthy"], (t.statuses || []).map((s) =>
      [stateBadge(s.state), time(s.timestamp), s.healthy == null ? "" : yesNo(s.healthy)]), "None yet."));
});

function amounts(map = {}, skipZero = false) {
  const parts = Object.entries(map).filter(([, v]) => !skipZero || Number(v) > 0).map(([name, v]) => {
    const value = typeof v === "object" && v !== null ? v.value : v;
    return `${name} ${name === "mem" || name === "disk" ? mb(value) : num(value)}`;
  });
  return parts.join(", ");
}

export const roles = simple(async (ctx) => {
  const [rolesAnswer, weightsAnswer, quotaAnswer] = await Promise.all(
    ["GET_ROLES", "GET_WEIGHTS", "GET_QUOTA"].map((call) => operator(call)));
  const rows = new Map();
  const role = (name) => {
    if (!rows.has(name)) rows.set(name, { name, weight: 1, frameworks: new Set(), allocated: {}, quota: {} });
    return rows.get(name);
  };
  for (const f of ctx.state.frameworks || []) {
    for (const name of f.roles || [f.role || "*"]) role(name).frameworks.add(f.id);
  }
  for (const { task: t } of index(ctx.state).tasks) {
    if (isTerminal(t.state) || !t.role) continue;
    const allocated = role(t.role).allocated;
    for (const [name, value] of Object.entries(t.resources || {})) {
      if (typeof value === "number") allocated[name] = (allocated[name] || 0) + value;
    }
  }
  if (rolesAnswer.available) {
    for (const r of rolesAnswer.body.get_roles?.roles || []) {
      const row = role(r.name);
      if (r.weight != null) row.weight = r.weight;
      for (const fid of r.frameworks || []) row.frameworks.add(fid.value || fid);
    }
  }
  if (weightsAnswer.available) {
    for (const w of weightsAnswer.body.get_weights?.weight_infos || []) role(w.role).weight = w.weight;
  }
  if (quotaAnswer.available) {
    for (const c of quotaAnswer.body.get_quota?.status?.configs || []) {
      role(c.role).quota = { guarantees: c.guarantees || {}, limits: c.limits || {} };
    }
  }
  const notes = [[rolesAnswer, "GET_ROLES"], [weightsAnswer, "GET_WEIGHTS"], [quotaAnswer, "GET_QUOTA"]]
    .filter(([answer]) => !answer.available)
    .map(([answer, call]) => h("p", { class: "panel" }, `${call} is not available: ${answer.message}`));
  const sorted = [...rows.values()].sort((x, y) => x.name.localeCompare(y.name));
  return page("Roles", notes, table(
    ["Role", "Weight", "Frameworks", "Allocated", "Quota guarantees", "Quota limits"],
    sorted.map((r) => [r.name, num(r.weight), String(r.frameworks.size), amounts(r.allocated, true),
      amounts(r.quota.guarantees), amounts(r.quota.limits)]), "No roles are in use."));
});

function machine(id = {}) {
  return [id.hostname, id.ip].filter(Boolean).join(" / ");
}

function nanos(value) {
  return Number((value || {}).nanoseconds || 0) / 1e9;
}

export const maintenance = simple(async (ctx) => {
  const [schedule, status] = await Promise.all(
    ["GET_MAINTENANCE_SCHEDULE", "GET_MAINTENANCE_STATUS"].map((call) => operator(call)));
  if (!schedule.available && !status.available) {
    return page("Maintenance", h("div", { class: "panel unavailable", id: "maintenance-unavailable" },
      h("p", {}, "Maintenance is not available on this master."), h("p", { class: "detail" }, schedule.message)));
  }
  const windows = schedule.available ? schedule.body.get_maintenance_schedule?.schedule?.windows || [] : [];
  const st = status.available ? status.body.get_maintenance_status?.status || {} : {};
  const inactive = (ctx.state.slaves || []).filter((a) => a.deactivated || !a.active);
  return page("Maintenance",
    h("h3", {}, "Schedule"),
    table(["Machines", "Starts", "Duration (s)"], windows.map((w) => [
      (w.machine_ids || []).map(machine).join(", "), time(nanos(w.unavailability?.start)),
      w.unavailability?.duration ? num(nanos(w.unavailability.duration)) : "indefinite"]),
    "No maintenance is scheduled."),
    h("h3", {}, "Draining machines"),
    table(["Machine", "Inverse offer responses"], (st.draining_machines || []).map((m) => [
      machine(m.id), (m.statuses || []).map((s) => `${s.framework_id?.value || ""}: ${s.status}`).join(", ")]),
    "None."),
    h("h3", {}, "Down machines"),
    table(["Machine"], (st.down_machines || []).map((m) => [machine(m)]), "None."),
    h("h3", {}, "Agents not active"),
    table(["Agent", "Host", "Deactivated"], inactive.map((a) => [
      link(["agents", a.id], a.id), agentName(a), yesNo(a.deactivated)]), "None."));
});

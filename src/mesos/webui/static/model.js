// Lookups over one /master/state answer, computed once per answer.

const TERMINAL = new Set(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST",
  "TASK_ERROR", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"]);

export const isTerminal = (state) => TERMINAL.has(state);

const cache = new WeakMap();

/**
 * {agents: Map id -> agent, frameworks: Map id -> framework (active and completed),
 *  tasks: [{task, framework}] (live first, then unreachable, then completed)}.
 */
export function index(state) {
  let out = cache.get(state);
  if (out) return out;
  const agents = new Map((state.slaves || []).map((a) => [a.id, a]));
  const frameworks = new Map();
  const live = [];
  const done = [];
  for (const framework of [...(state.frameworks || []), ...(state.completed_frameworks || [])]) {
    frameworks.set(framework.id, framework);
    for (const task of [...(framework.tasks || []), ...(framework.unreachable_tasks || [])]) {
      live.push({ task, framework });
    }
    for (const task of framework.completed_tasks || []) done.push({ task, framework });
  }
  out = { agents, frameworks, tasks: [...live, ...done] };
  cache.set(state, out);
  return out;
}

/** The task with this id; a live one wins over a completed one of the same id. */
export function findTask(state, taskId) {
  return index(state).tasks.find((entry) => entry.task.id === taskId) || null;
}

/** Task count per state over every task the master knows. */
export function countByState(state) {
  const counts = {};
  for (const { task } of index(state).tasks) counts[task.state] = (counts[task.state] || 0) + 1;
  return counts;
}

/** A framework's role(s) as one string. */
export function rolesOf(framework) {
  return (framework.roles || [framework.role || "*"]).join(", ");
}

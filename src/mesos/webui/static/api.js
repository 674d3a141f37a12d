// How the UI talks to the cluster.
//
// The master serves this page, so its endpoints are same-origin and read with fetch().
// Agents are other origins and send no CORS header, so their JSON endpoints (/state,
// /files/browse, /files/read) are read with JSONP (`?jsonp=callback`), which they answer.

/** GET a master endpoint as JSON; throws with the answer's text on an error status. */
export async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/**
 * One v1 operator call, `POST /api/v1 {"type": type}`.
 * Resolves to {available: true, body} or, where this master does not have the call
 * (501, 404), to {available: false, message}; other errors throw.
 */
export async function operator(type, extra = {}) {
  const response = await fetch("/api/v1", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ type, ...extra }),
    cache: "no-store",
  });
  const text = await response.text();
  if (response.status === 501 || response.status === 404) {
    return { available: false, message: text || `${type} answered ${response.status}` };
  }
  if (!response.ok) throw new Error(`${type}: ${response.status} ${text}`);
  return { available: true, body: text ? JSON.parse(text) : {} };
}

/** An agent's base URL, from its libprocess pid (slave(1)@IP:PORT) or hostname and port. */
export function agentBase(agent) {
  const at = String(agent.pid || "").split("@")[1];
  return `${location.protocol}//${at || `${agent.hostname}:${agent.port}`}`;
}

let jsonpSeq = 0;

/** GET `url` with `params` from another origin by JSONP; rejects on error or timeout. */
export function jsonp(url, params = {}, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const name = `mesosJsonp${++jsonpSeq}`;
    const script = document.createElement("script");
    let timer = null;
    const finish = (settle, value) => {
      if (!script.isConnected) return;
      clearTimeout(timer);
      script.remove();
      // A late answer must not raise a ReferenceError: keep a no-op for a while.
      window[name] = () => {};
      setTimeout(() => delete window[name], 60000);
      settle(value);
    };
    window[name] = (data) => finish(resolve, data);
    script.onerror = () => finish(reject, new Error(`cannot reach ${url}`));
    // An error answer is plain text, not a callback: it loads without calling back.
    script.onload = () => finish(reject, new Error(`${url} answered with an error`));
    timer = setTimeout(() => finish(reject, new Error(`${url} timed out`)), timeoutMs);
    script.src = `${url}?${new URLSearchParams({ ...params, jsonp: name })}`;
    document.head.append(script);
  });
}

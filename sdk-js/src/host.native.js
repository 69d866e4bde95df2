// Outside a component (node --test): the stand-in host, with the names and value shapes of the
// component's bindings (an `err` thrown as a value carrying it as `payload`), over the state
// `testing.js` exposes to the test.

import { http, kv, logs, state } from "./testing.js";

const LEVELS = new Set(["debug", "info", "warn", "error"]);

export function log(level, message) {
  if (!LEVELS.has(level)) throw new TypeError(`${level} is not a log level: debug, info, warn or error`);
  logs.push([level, message]);
}

export function kvGet(key) {
  return kv.get(key);
}

export function kvSet(key, value) {
  if (!state.kvWrite) throw { payload: "kv_write is not granted to this tenant's plugins" };
  if (value === undefined) kv.delete(key);
  else kv.set(key, value);
}

export function nowMs() {
  return state.nowMs;
}

export function httpFetch(request) {
  const answer = http.get(request.url);
  if (!answer) throw { payload: `no answer scripted for ${request.url}` };
  const [status, body] = answer;
  return { status, headers: [], body };
}

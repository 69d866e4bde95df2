// Test helpers for plugin authors: build events, run `handle` natively against a stand-in host
// whose key-value store, clock, HTTP answers and captured logs the test controls.
//
//     import { test } from "node:test";
//     import assert from "node:assert/strict";
//     import * as testing from "@hookhost/sdk/testing";
//     import { handle } from "./app.js";
//
//     test("enriches", () => {
//       testing.reset();
//       testing.kv.set("owner", "ada");
//       const actions = testing.run(handle, testing.event("call.missed", { call_id: "CA1" }));
//       assert.equal(testing.delivered(actions)[0].payload.owner, "ada");
//     });
//
// The same plugin built as a component runs in hookhost's sandbox with
// `hookhost plugin run --component … --event …`.

import { json, parseJson } from "./index.js";

/** The tenant's key-value store as the plugin sees it. */
export const kv = new Map();
/** Log lines captured, as [level, message]. */
export const logs = [];
/** Scripted HTTP answers by URL: [status, body]. */
export const http = new Map();
const START_MS = 1_760_084_505_000n;
/** The stand-in host's state besides the maps: the clock and the kv_write capability. */
export const state = { nowMs: START_MS, kvWrite: false };

/** Forget every key, log line and HTTP answer; the clock back to its start; kv_write off. */
export function reset() {
  kv.clear();
  logs.length = 0;
  http.clear();
  state.nowMs = START_MS;
  state.kvWrite = false;
}

/** An event as hookhost hands it to `handle`. */
export function event(eventType, payload, { isTest = false, id = "evt_test" } = {}) {
  return {
    id,
    tenantId: "ten_test",
    eventType,
    occurredAt: 1_760_084_505n,
    source: "test",
    isTest,
    payload: typeof payload === "string" ? payload : json(payload),
  };
}

/** Call `handle` as the component would; a PluginFailure is thrown as it is. */
export function run(handle, event) {
  return [...handle(event)];
}

/** The deliver actions as {eventType, payload (parsed), endpoints, request}. */
export function delivered(actions) {
  return actions
    .filter((a) => a.tag === "deliver")
    .map(({ val }) => ({ ...val, payload: val.payload ? parseJson(val.payload) : undefined }));
}

/** The deliver actions that shape their request (each action's record: eventType, request, …). */
export function requests(actions) {
  return actions.filter((a) => a.tag === "deliver" && a.val.request).map(({ val }) => val);
}

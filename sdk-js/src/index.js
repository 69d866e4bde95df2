// @hookhost/sdk — write hookhost plugins in JavaScript.
//
// A hookhost plugin is a WebAssembly component of the hookhost:plugin@0.2.0 world
// (wit/plugin.wit). hookhost calls its `handle` once per canonical event, in a fresh sandbox,
// and acts on the actions it returns: deliver to endpoints (in hookhost's envelope, or as a
// whole request the plugin shapes: `deliverRaw`), write to a sink, or drop.
//
//     import * as hh from "@hookhost/sdk";
//     export function handle(event) {
//       const payload = hh.payload(event);
//       hh.redactPhones(payload);
//       return [hh.deliver(event.eventType, payload)];
//     }
//
// Build it with `npx hookhost-build app.js -o plugin.wasm` (componentize-js) and upload the
// .wasm. Test `handle` natively with `@hookhost/sdk/testing` under `node --test`. The sandbox
// grants no filesystem, network, environment, clock or randomness but the host functions here.

import * as host from "#host";
import { parse as losslessParse, stringify as losslessStringify, isSafeNumber } from "lossless-json";

/** How many trailing digits a masked phone number keeps. */
export const KEEP_DIGITS = 4;

/**
 * Throw from `handle` to fail the event on purpose; `retryable` asks hookhost to try the same
 * event again later. (Any other exception traps the plugin: a fault, recorded as such.)
 */
export class PluginFailure extends Error {
  constructor(code, message, { retryable = false } = {}) {
    super(`${code}: ${message}`);
    this.name = "PluginFailure";
    // The component's bindings turn a thrown value with a `payload` into the `err` of `handle`.
    this.payload = { code, message, retryable };
  }
}

// Integers beyond 2^53 stay exact (as BigInt), as the Rust and Python SDKs keep them; every
// other number is a double, as everywhere in JSON. The engine's parser goes first: only when it
// produced an integer beyond 2^53 (which it may have rounded) is the text parsed again with
// lossless-json. (The sandbox has no JIT: a walk of the parsed value costs far less than any
// scan of the text.)
function parseNumber(text) {
  if (isSafeNumber(text) || !/^-?\d+$/.test(text)) return Number(text);
  return BigInt(text);
}

function holdsUnsafeInteger(value) {
  if (typeof value === "number") return Math.abs(value) > Number.MAX_SAFE_INTEGER && Number.isInteger(value);
  if (value === null || typeof value !== "object") return false;
  for (const key in value) {
    if (holdsUnsafeInteger(value[key])) return true;
  }
  return false;
}

/** Parse JSON text, keeping integers beyond 2^53 exact (as BigInt). */
export function parseJson(text) {
  const value = JSON.parse(text);
  return holdsUnsafeInteger(value) ? losslessParse(text, null, parseNumber) : value;
}

/** JSON text of `value`, compact; BigInt values written as their digits. */
export function json(value) {
  try {
    return JSON.stringify(value);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    return losslessStringify(value);
  }
}

/** The event's payload parsed; one that does not parse fails the event (not retryable). */
export function payload(event) {
  try {
    return parseJson(event.payload);
  } catch (e) {
    throw new PluginFailure("bad_payload", `event payload is not JSON: ${e.message}`);
  }
}

/**
 * Deliver `payload` as an event of `eventType` to every subscribed endpoint (or to
 * `endpoints` only), in hookhost's envelope.
 */
export function deliver(eventType, payload, { endpoints = [] } = {}) {
  return { tag: "deliver", val: { eventType, payload: json(payload), endpoints: [...endpoints], request: undefined } };
}

/** Deliver the event as it came in. */
export function deliverUnchanged(event) {
  return { tag: "deliver", val: { eventType: event.eventType, payload: event.payload, endpoints: [], request: undefined } };
}

/**
 * Deliver `body` as the whole request instead of hookhost's envelope: a string is sent as it
 * is, anything else as JSON (and is then also the payload that keys ordered deliveries).
 * `method` POST, PUT or PATCH; `path` appended to each endpoint's URL (`/more`, `?query`).
 * hookhost refuses its own headers (`host`, `content-length`, `content-type`, `webhook-*`,
 * `x-hookhost-*`, the endpoint's signature names) with the reason.
 */
export function deliverRaw(
  eventType,
  body,
  { method = "POST", path = "", headers = [], contentType = "application/json", endpoints = [] } = {},
) {
  const text = typeof body === "string" ? body : json(body);
  const keyed = typeof body === "string" ? "" : text;
  const request = { method, path, headers: headers.map(([n, v]) => [n, v]), contentType, body: text };
  return { tag: "deliver", val: { eventType, payload: keyed, endpoints: [...endpoints], request } };
}

/** Write `record` to the tenant's sink `name`, keyed by `externalId`. */
export function sink(name, externalId, record) {
  return { tag: "sink", val: { sink: name, externalId, data: json(record) } };
}

/** Drop the event on purpose, recording why. */
export function drop(reason) {
  return { tag: "drop", val: reason };
}

/** A log line, captured with the invocation (size-limited). `level`: debug, info, warn, error. */
export function log(level, message) {
  host.log(level, String(message));
}

/** A value of the tenant's key-value store, or undefined. */
export function kvGet(key) {
  return host.kvGet(key) ?? undefined;
}

// A host function's `err` arrives as a thrown value carrying it as `payload`.
function refused(e) {
  return new Error(typeof e?.payload === "string" ? e.payload : String(e?.message ?? e));
}

/**
 * Set (or with undefined delete) a key; needs the tenant's `kv_write` capability. A refusal
 * throws an Error with the reason.
 */
export function kvSet(key, value) {
  try {
    host.kvSet(key, value ?? undefined);
  } catch (e) {
    throw refused(e);
  }
}

/** The host's wall-clock time, unix milliseconds. */
export function nowMs() {
  return Number(host.nowMs());
}

/**
 * Fetch from one of the tenant's `http_allow` hosts: `{method, url, headers?, body?}` →
 * `{status, headers, body}`. A refusal throws an Error with the reason.
 */
export function httpFetch({ method = "GET", url, headers = [], body = undefined }) {
  try {
    return host.httpFetch({ method, url, headers, body });
  } catch (e) {
    throw refused(e);
  }
}

/**
 * Whether `s` is already E.164: `+`, then 8 to 15 digits, the first not 0. hookhost
 * normalizes `from`/`to`/`contact` to E.164 with the tenant's country before a plugin sees them.
 */
export function isE164(s) {
  return /^\+[1-9][0-9]{7,14}$/.test(s);
}

// The phone rules below walk char codes rather than run regular expressions: the sandbox has no
// JIT, and a loop over a dozen characters costs a fraction of a regex or a replace callback.

// What Rust's `str::trim` strips (Unicode White_Space), which is not quite JavaScript's `trim`.
function isWhite(c) {
  return (c >= 9 && c <= 13) || c === 32 || c === 0x85 || c === 0xa0 || c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000;
}

function isDigit(c) {
  return c >= 48 && c <= 57;
}

/**
 * Whether a string looks like a phone number: an optional `+`, then 7 to 15 digits with only
 * spaces, dashes, dots and parentheses between them.
 */
export function looksLikePhone(s) {
  // Most strings of a payload are words and ids: refused on their first character.
  const c0 = s.charCodeAt(0);
  if (c0 > 32 && c0 < 127 && c0 !== 43 && c0 !== 40 && !(c0 >= 48 && c0 <= 57)) return false;
  let start = 0;
  let end = s.length;
  while (start < end && isWhite(s.charCodeAt(start))) start++;
  while (end > start && isWhite(s.charCodeAt(end - 1))) end--;
  if (start < end && s.charCodeAt(start) === 43) start++; // +
  if (start >= end) return false;
  const first = s.charCodeAt(start);
  if (!isDigit(first) && first !== 40) return false; // a digit or (
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (isDigit(c)) digits++;
    else if (c !== 32 && c !== 45 && c !== 46 && c !== 40 && c !== 41) return false; // space - . ( )
  }
  return digits >= 7 && digits <= 15;
}

/** Every digit but the last four as `*`; the punctuation kept. */
export function maskPhone(s) {
  let total = 0;
  for (let i = 0; i < s.length; i++) if (isDigit(s.charCodeAt(i))) total++;
  let left = total - KEEP_DIGITS;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    if (isDigit(s.charCodeAt(i)) && left-- > 0) out += "*";
    else out += s[i];
  }
  return out;
}

/**
 * Mask every phone-number-looking string in a parsed payload (nested objects and arrays too),
 * in place; returns how many were masked. The same rule as the Rust SDK's `redact`.
 */
export function redactPhones(value) {
  if (value === null || typeof value !== "object") return 0;
  let count = 0;
  for (const key in value) {
    const v = value[key];
    if (typeof v === "string") {
      if (looksLikePhone(v)) {
        value[key] = maskPhone(v);
        count++;
      }
    } else {
      count += redactPhones(v);
    }
  }
  return count;
}

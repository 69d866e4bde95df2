// Types of @hookhost/sdk: the hookhost:plugin@0.2.0 world as componentize-js binds it to
// JavaScript (records camelCase, u64 as bigint, options as undefined, variants as {tag, val}),
// the canonical payloads, and the SDK's helpers.

/** A canonical event, as hookhost normalized it from a provider's callback. */
export interface Event {
  /** `evt_…`; stable across retries of the same provider request. */
  id: string;
  /** `ten_…` */
  tenantId: string;
  /** Canonical type such as `call.missed` or `billing.subscription.updated`. */
  eventType: string;
  /** When the provider says it happened, unix seconds. */
  occurredAt: bigint;
  /** `twilio`, `stripe`, `exotel`, `vendor`, … */
  source: string;
  /** True for sample events sent by endpoint tests. */
  isTest: boolean;
  /** The canonical payload, JSON text (an object). */
  payload: string;
}

/** The whole outbound request of a delivery, when the plugin shapes it. */
export interface OutboundRequest {
  method: string;
  path: string;
  headers: [string, string][];
  contentType: string;
  body: string;
}

export interface Deliver {
  eventType: string;
  payload: string;
  endpoints: string[];
  request: OutboundRequest | undefined;
}

export interface SinkWrite {
  sink: string;
  externalId: string;
  data: string;
}

/** What the host should do with the event. An empty list drops it. */
export type Action = { tag: "deliver"; val: Deliver } | { tag: "sink"; val: SinkWrite } | { tag: "drop"; val: string };

/** What a plugin module exports. */
export type Handle = (event: Event) => Action[];

export type Level = "debug" | "info" | "warn" | "error";

/** Fields hookhost does not name are kept as the provider sent them. */
interface Open {
  [field: string]: unknown;
}

/**
 * A call event: `call.initiated`, `call.ringing`, `call.answered`, `call.completed`,
 * `call.missed`, `call.forwarded`, `call.failed`, `call.ended`, `call.transcript`.
 * `from`/`to` are E.164 when hookhost could read them as numbers (the provider's own
 * spelling, when different, in `from_raw`/`to_raw`).
 */
export interface Call extends Open {
  call_id: string;
  from?: string;
  to?: string;
  direction?: string;
  call_status?: string;
  /** On `call.completed`: `answered`, `missed`, `forwarded`, `failed`. */
  outcome?: "answered" | "missed" | "forwarded" | "failed";
  reason?: string;
  duration_s?: number;
  forwarded_to?: string;
  recording_url?: string;
  sequence_number?: number;
}

/**
 * A message event: `sms.received`, `sms.opt_out`, `sms.opt_in`, `sms.help`, and the outbound
 * statuses `sms.sent`, `sms.delivered`, `sms.undelivered`, `sms.failed`, `sms.read` (with
 * `status`, `contact` and `error_code`).
 */
export interface Sms extends Open {
  message_sid?: string;
  from?: string;
  to?: string;
  body?: string;
  status?: string;
  contact?: string;
  error_code?: string;
}

/** A billing event: `billing.*` from Stripe. */
export interface Billing extends Open {
  stripe_event_id?: string;
  stripe_event_type?: string;
  customer_id?: string;
  object_id?: string;
  /** The Stripe object as Stripe sent it. */
  object: Record<string, unknown>;
}

export const KEEP_DIGITS: 4;

export class PluginFailure extends Error {
  constructor(code: string, message: string, options?: { retryable?: boolean });
  readonly payload: { code: string; message: string; retryable: boolean };
}

export function parseJson(text: string): any;
export function json(value: unknown): string;
/** The payload parsed (integers beyond 2^53 as bigint); type it by the event's family. */
export function payload<T = Call | Sms | Billing | Record<string, unknown>>(event: Event): T;
export function deliver(eventType: string, payload: unknown, options?: { endpoints?: string[] }): Action;
export function deliverUnchanged(event: Event): Action;
export function deliverRaw(
  eventType: string,
  body: unknown,
  options?: { method?: "POST" | "PUT" | "PATCH"; path?: string; headers?: [string, string][]; contentType?: string; endpoints?: string[] },
): Action;
export function sink(name: string, externalId: string, record: unknown): Action;
export function drop(reason: string): Action;

export function log(level: Level, message: string): void;
export function kvGet(key: string): string | undefined;
export function kvSet(key: string, value: string | undefined): void;
export function nowMs(): number;
export interface HttpResponse {
  status: number;
  headers: [string, string][];
  body: string;
}
export function httpFetch(request: {
  method?: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: string;
  headers?: [string, string][];
  body?: string;
}): HttpResponse;

export function isE164(s: string): boolean;
export function looksLikePhone(s: string): boolean;
export function maskPhone(s: string): string;
export function redactPhones(value: unknown): number;

// Compiled by `tsc -p sdk-js` (npm test), never run: the SDK's types describe what a plugin
// written in TypeScript (or checked with JSDoc) uses, and reject what the world does not allow.
import * as hh from "@hookhost/sdk";
import type { Action, Billing, Call, Event, Handle, Sms } from "@hookhost/sdk";
import * as testing from "@hookhost/sdk/testing";

export const handle: Handle = (event: Event): Action[] => {
  const seconds: bigint = event.occurredAt;
  if (event.eventType.startsWith("call.")) {
    const call = hh.payload<Call>(event);
    const outcome: Call["outcome"] = call.outcome;
    hh.log("info", `${call.call_id} ${outcome ?? "open"} ${seconds}`);
    return [hh.deliverRaw("call.completed", { id: call.call_id }, { method: "PUT", path: "/calls", headers: [["x-a", "1"]] })];
  }
  if (event.eventType.startsWith("sms.")) {
    const sms = hh.payload<Sms>(event);
    return [hh.sink("crm", sms.message_sid ?? event.id, { body: sms.body })];
  }
  const billing = hh.payload<Billing>(event);
  const owner: string | undefined = hh.kvGet(billing.customer_id ?? "");
  hh.kvSet("seen", owner);
  const answer = hh.httpFetch({ method: "GET", url: "https://crm.example/x" });
  const status: number = answer.status;
  if (status >= 500) throw new hh.PluginFailure("upstream", "CRM down", { retryable: true });
  return [hh.deliver(event.eventType, billing, { endpoints: ["ep_1"] }), hh.drop(`at ${hh.nowMs()}`)];
};

const actions: Action[] = testing.run(handle, testing.event("call.missed", { call_id: "CA1" }));
export const first: string = testing.delivered(actions)[0].eventType;

// @ts-expect-error: levels are debug, info, warn, error
hh.log("loud", "x");
// @ts-expect-error: a shaped request is POST, PUT or PATCH
hh.deliverRaw("x", {}, { method: "DELETE" });
// @ts-expect-error: actions are tagged variants
export const wrong: Action = { tag: "deliver", val: "not a record" };

// Masks every phone-number field of the payload but its last 4 digits, then delivers it: the
// JavaScript twin of plugins/redact-phone (the same actions on the same events, checked by the
// conformance test).

import * as hh from "@hookhost/sdk";

export function handle(event) {
  const payload = hh.payload(event);
  const masked = hh.redactPhones(payload);
  hh.log("debug", `masked ${masked} phone fields`);
  return [hh.deliver(event.eventType, payload)];
}

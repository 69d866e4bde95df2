// {{NAME}}: a hookhost plugin, called once per canonical event; returns what to do with it.

import * as hh from "@hookhost/sdk";

/** @param {import("@hookhost/sdk").Event} event @returns {import("@hookhost/sdk").Action[]} */
export function handle(event) {
  if (event.isTest) return [hh.drop("test event")];
  const payload = hh.payload(event);
  payload.handled_by = "{{NAME}}";
  hh.log("info", `handled ${event.eventType}`);
  return [hh.deliver(event.eventType, payload)];
}

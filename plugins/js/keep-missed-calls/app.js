// A filter: drops test events and every event but missed calls, each with a recorded reason:
// the JavaScript twin of plugins/keep-missed-calls.

import * as hh from "@hookhost/sdk";

export function handle(event) {
  if (event.isTest) return [hh.drop("test event")];
  if (event.eventType !== "call.missed") return [hh.drop(`${event.eventType} is not a missed call`)];
  return [hh.deliverUnchanged(event)];
}

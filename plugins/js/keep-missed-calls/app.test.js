import { test } from "node:test";
import assert from "node:assert/strict";

import * as testing from "@hookhost/sdk/testing";
import { handle } from "./app.js";

test("keeps missed calls only", () => {
  const kept = testing.run(handle, testing.event("call.missed", { call_id: "CA1" }));
  assert.equal(testing.delivered(kept)[0].payload.call_id, "CA1");
  const [dropped] = testing.run(handle, testing.event("call.answered", { call_id: "CA1" }));
  assert.match(dropped.val, /not a missed call/);
  const [fake] = testing.run(handle, testing.event("call.missed", { call_id: "CA1" }, { isTest: true }));
  assert.equal(fake.val, "test event");
});

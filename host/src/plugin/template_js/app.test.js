import { test } from "node:test";
import assert from "node:assert/strict";

import * as testing from "@hookhost/sdk/testing";
import { handle } from "./app.js";

test("marks the payload", () => {
  testing.reset();
  const out = testing.run(handle, testing.event("call.missed", { call_id: "CA1" }));
  assert.equal(testing.delivered(out)[0].payload.handled_by, "{{NAME}}");
  assert.equal(testing.logs.length, 1);
});

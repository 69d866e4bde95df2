import { test } from "node:test";
import assert from "node:assert/strict";

import * as testing from "@hookhost/sdk/testing";
import { handle } from "./app.js";

test("masks phone fields only", () => {
  testing.reset();
  const payload = { from: "+14158675309", call_sid: "CA1234567890ABCDE", legs: [{ to: "+1 (800) 555-1212" }] };
  const [{ eventType, payload: out }] = testing.delivered(testing.run(handle, testing.event("call.missed", payload)));
  assert.equal(eventType, "call.missed");
  assert.equal(out.from, "+*******5309");
  assert.equal(out.legs[0].to, "+* (***) ***-1212");
  assert.equal(out.call_sid, "CA1234567890ABCDE");
  assert.deepEqual(testing.logs, [["debug", "masked 2 phone fields"]]);
});

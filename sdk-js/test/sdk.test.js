import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

import * as hh from "@hookhost/sdk";
import * as testing from "@hookhost/sdk/testing";

beforeEach(() => testing.reset());

test("phone rules match the Rust SDK's", () => {
  for (const yes of ["+14158675309", "4158675309", "+1 (415) 867-5309", "+91 80 4719 2000", " 4158675309\u3000"]) {
    assert.ok(hh.looksLikePhone(yes), yes);
  }
  // U+FEFF is trimmed by JavaScript's trim() but is not White_Space to Rust's trim(): not a phone.
  for (const no of ["CA1234567890ABCDE", "42", "+", "", "client:alice", "12-34", "1234567890123456", "٤١٥٨٦٧٥٣٠٩", "\ufeff4158675309"]) {
    assert.ok(!hh.looksLikePhone(no), no);
  }
  assert.equal(hh.maskPhone("+1 (415) 867-5309"), "+* (***) ***-5309");
  const payload = { from: "+14158675309", legs: [{ to: "+18005551212", n: 42 }], note: "call me" };
  assert.equal(hh.redactPhones(payload), 2);
  assert.equal(payload.legs[0].to, "+*******1212");
  assert.ok(hh.isE164("+919876543210"));
  assert.ok(!hh.isE164("09876543210") && !hh.isE164("+0123456789") && !hh.isE164("+١٢٣٤٥٦٧٨٩"));
});

test("integers beyond 2^53 survive a round trip; other numbers are doubles", () => {
  const event = testing.event("call.completed", '{"big":9007199254740993,"neg":-12345678901234567890,"ratio":0.5,"n":42}');
  const parsed = hh.payload(event);
  assert.equal(parsed.big, 9007199254740993n);
  assert.equal(parsed.n, 42);
  const [{ payload }] = testing.delivered([hh.deliver("call.completed", parsed)]);
  assert.deepEqual(payload, parsed);
  assert.equal(hh.deliver("x", parsed).val.payload, '{"big":9007199254740993,"neg":-12345678901234567890,"ratio":0.5,"n":42}');
  assert.throws(() => hh.payload(testing.event("x", "{not json")), (e) => e.payload.code === "bad_payload");
  // A test event may carry such an integer too.
  assert.equal(hh.payload(testing.event("x", { big: 9007199254740993n })).big, 9007199254740993n);
});

test("actions", () => {
  const [d] = testing.delivered([hh.deliver("call.missed", { a: "é" }, { endpoints: ["ep_1"] })]);
  assert.deepEqual([d.eventType, d.payload, d.endpoints], ["call.missed", { a: "é" }, ["ep_1"]]);
  const raw = hh.deliverRaw("call.completed", { event: "x" }, { method: "PUT", path: "/calls", headers: [["X-A", "1"]] });
  const [{ request }] = testing.requests([raw]);
  assert.deepEqual([request.method, request.path, request.contentType, request.headers], ["PUT", "/calls", "application/json", [["X-A", "1"]]]);
  assert.deepEqual(JSON.parse(request.body), { event: "x" });
  assert.equal(raw.val.payload, request.body, "a JSON body keys ordered deliveries");
  const text = hh.deliverRaw("sms.received", "hello", { contentType: "text/plain" });
  assert.deepEqual([text.val.payload, text.val.request.body], ["", "hello"]);
  assert.deepEqual(JSON.parse(hh.sink("crm", "CA1", { x: 1 }).val.data), { x: 1 });
  assert.deepEqual(hh.drop("because"), { tag: "drop", val: "because" });
  assert.equal(testing.requests([hh.deliver("x", {})]).length, 0);
});

test("failures carry the plugin-error; host refusals throw with the reason", () => {
  const failure = new hh.PluginFailure("not_configured", "set the key", { retryable: true });
  assert.deepEqual(failure.payload, { code: "not_configured", message: "set the key", retryable: true });
  assert.throws(() => hh.kvSet("k", "v"), /kv_write is not granted/);
  testing.state.kvWrite = true;
  hh.kvSet("k", "v");
  assert.equal(hh.kvGet("k"), "v");
  hh.kvSet("k", undefined);
  assert.equal(hh.kvGet("k"), undefined);
  assert.throws(() => hh.httpFetch({ url: "https://crm.example/x" }), /no answer scripted/);
  testing.http.set("https://crm.example/x", [200, "{}"]);
  assert.equal(hh.httpFetch({ url: "https://crm.example/x" }).status, 200);
  assert.equal(hh.nowMs(), 1_760_084_505_000);
  hh.log("info", "hello");
  assert.deepEqual(testing.logs, [["info", "hello"]]);
  assert.throws(() => hh.log("loud", "x"), /not a log level/);
});

import json
import unittest

import hookhost_sdk as hh
from hookhost_sdk import testing


class Sdk(unittest.TestCase):
    def setUp(self):
        testing.reset()

    def test_phone_rules_match_the_rust_sdk(self):
        for yes in ["+14158675309", "4158675309", "+1 (415) 867-5309", "+91 80 4719 2000", " 4158675309\u3000"]:
            self.assertTrue(hh.looks_like_phone(yes), yes)
        for no in ["CA1234567890ABCDE", "42", "+", "", "client:alice", "12-34", "1234567890123456", "٤١٥٨٦٧٥٣٠٩", "\x1c4158675309"]:
            self.assertFalse(hh.looks_like_phone(no), no)
        self.assertEqual(hh.mask_phone("+1 (415) 867-5309"), "+* (***) ***-5309")
        payload = {"from": "+14158675309", "legs": [{"to": "+18005551212", "n": 42}], "note": "call me"}
        self.assertEqual(hh.redact_phones(payload), 2)
        self.assertEqual(payload["legs"][0]["to"], "+*******1212")
        self.assertTrue(hh.is_e164("+919876543210"))
        self.assertFalse(hh.is_e164("09876543210") or hh.is_e164("+0123456789") or hh.is_e164("+١٢٣٤٥٦٧٨٩"))

    def test_actions(self):
        [(t, p)] = testing.delivered([hh.deliver("call.missed", {"a": "é"}, endpoints=["ep_1"])])
        self.assertEqual((t, p), ("call.missed", {"a": "é"}))
        raw = hh.deliver_raw("call.completed", {"event": "x"}, method="PUT", path="/calls", headers=[("X-A", "1")])
        [(t, request)] = testing.requests([raw])
        self.assertEqual((request.method, request.path, request.content_type), ("PUT", "/calls", "application/json"))
        self.assertEqual(json.loads(request.body), {"event": "x"})
        self.assertEqual(raw.value.payload, request.body, "a JSON body keys ordered deliveries")
        text = hh.deliver_raw("sms.received", "hello", content_type="text/plain")
        self.assertEqual((text.value.payload, text.value.request.body), ("", "hello"))
        self.assertEqual(json.loads(hh.sink("crm", "CA1", {"x": 1}).value.data), {"x": 1})
        self.assertEqual(hh.drop("because").value, "because")

    def test_failures_and_host_refusals(self):
        def handle(event):
            raise hh.PluginFailure("not_configured", "set the key", retryable=True)

        with self.assertRaises(Exception) as caught:
            hh.export(handle)().handle(testing.event("call.missed", {}))
        error = caught.exception.value
        self.assertEqual((error.code, error.retryable), ("not_configured", True))
        with self.assertRaises(hh.PluginFailure):
            hh.payload(testing.event("call.missed", {}).__class__("e", "t", "call.missed", 0, "s", False, "{not json"))
        with self.assertRaisesRegex(RuntimeError, "kv_write is not granted"):
            hh.kv_set("k", "v")
        testing.kv_write[0] = True
        hh.kv_set("k", "v")
        self.assertEqual(hh.kv_get("k"), "v")


if __name__ == "__main__":
    unittest.main()

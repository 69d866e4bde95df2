import unittest

import app
from hookhost_sdk import testing


class RedactPhone(unittest.TestCase):
    def test_masks_phone_fields_only(self):
        testing.reset()
        payload = {"from": "+14158675309", "call_sid": "CA1234567890ABCDE", "legs": [{"to": "+1 (800) 555-1212"}]}
        actions = testing.run(app.handle, testing.event("call.missed", payload))
        [(event_type, out)] = testing.delivered(actions)
        self.assertEqual(event_type, "call.missed")
        self.assertEqual(out["from"], "+*******5309")
        self.assertEqual(out["legs"][0]["to"], "+* (***) ***-1212")
        self.assertEqual(out["call_sid"], "CA1234567890ABCDE")
        self.assertEqual(testing.logs, [("debug", "masked 2 phone fields")])


if __name__ == "__main__":
    unittest.main()

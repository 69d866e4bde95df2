import unittest

import app
from hookhost_sdk import testing


class KeepMissedCalls(unittest.TestCase):
    def test_keeps_missed_calls_only(self):
        kept = testing.run(app.handle, testing.event("call.missed", {"call_id": "CA1"}))
        self.assertEqual(testing.delivered(kept)[0][1]["call_id"], "CA1")
        [dropped] = testing.run(app.handle, testing.event("call.answered", {"call_id": "CA1"}))
        self.assertIn("not a missed call", dropped.value)
        [test] = testing.run(app.handle, testing.event("call.missed", {"call_id": "CA1"}, is_test=True))
        self.assertEqual(test.value, "test event")


if __name__ == "__main__":
    unittest.main()

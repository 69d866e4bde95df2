//! A plugin whose upstream is sometimes down: while the tenant's key `upstream:down` is set it
//! returns a `retryable` error (the host puts the event back and tries again later, up to its
//! attempt budget); otherwise it delivers the event unchanged. Used by the tests of the retry
//! path; a model for plugins that call services which can fail for a while.
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct FlakyUpstream;

impl Plugin for FlakyUpstream {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        if let Some(why) = hookhost_sdk::kv_get("upstream:down") {
            return Err(PluginError { code: "upstream_unavailable".into(), message: why, retryable: true });
        }
        Ok(vec![hookhost_sdk::deliver_unchanged(&event)])
    }
}

hookhost_sdk::export!(FlakyUpstream);

#[cfg(test)]
mod tests {
    use hookhost_sdk::serde_json::json;
    use hookhost_sdk::testing::{self, event};

    use super::*;

    #[test]
    fn retryable_while_the_upstream_is_down() {
        testing::reset();
        testing::kv_insert("upstream:down", "503 from crm");
        let err = FlakyUpstream::handle(event("call.missed", json!({ "call_id": "CA1" }))).unwrap_err();
        assert!(err.retryable);
        assert_eq!(err.message, "503 from crm");
        testing::reset();
        assert_eq!(FlakyUpstream::handle(event("call.missed", json!({ "call_id": "CA1" }))).unwrap().len(), 1);
    }
}

//! Delivers every event as it came in: the behaviour of a tenant with no plugin, as a plugin.
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct Passthrough;

impl Plugin for Passthrough {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        Ok(vec![hookhost_sdk::deliver_unchanged(&event)])
    }
}

hookhost_sdk::export!(Passthrough);

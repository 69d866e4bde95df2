//! Masks every phone-number field of the payload but its last 4 digits, then delivers it.
use hookhost_sdk::{Action, Event, Level, Plugin, PluginError, redact};

struct RedactPhone;

impl Plugin for RedactPhone {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let mut payload = event.payload_json()?;
        let masked = redact::redact_phones(&mut payload);
        hookhost_sdk::log(Level::Debug, &format!("masked {masked} phone fields"));
        Ok(vec![hookhost_sdk::deliver(&event.event_type, &payload)])
    }
}

hookhost_sdk::export!(RedactPhone);

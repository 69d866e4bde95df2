//! Typed canonical events: one serde type per family of event types, as hookhost's normalizers
//! produce them. Fields a provider did not send are `None`; fields hookhost does not know are
//! kept in `extra`, so a plugin that reshapes an event loses nothing.

#![allow(missing_docs)] // field names are the documentation: they are the canonical payload keys

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A call event: `call.initiated`, `call.ringing`, `call.answered`, `call.completed`,
/// `call.missed`, `call.forwarded`, `call.failed`, `call.ended`, `call.transcript`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The provider's call id (Twilio's `CallSid`).
    pub call_id: String,
    /// E.164 when the host could read it as a number (national numbers in the tenant's default
    /// country); the provider's own spelling, when different, is `extra["from_raw"]`.
    pub from: Option<String>,
    /// As `from` (`extra["to_raw"]`).
    pub to: Option<String>,
    /// `inbound`, `outbound-api`, `outbound-dial`, …
    pub direction: Option<String>,
    pub call_status: Option<String>,
    /// On `call.completed` and the alongside event: `answered`, `missed`, `forwarded`, `failed`.
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub duration_s: Option<i64>,
    pub forwarded_to: Option<String>,
    pub recording_url: Option<String>,
    pub sequence_number: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A message event: `sms.received`, `sms.opt_out`, `sms.opt_in`, `sms.help`, and the outbound
/// statuses `sms.sent`, `sms.delivered`, `sms.undelivered`, `sms.failed`, `sms.read` (with
/// `status`, `contact` and `error_code` in `extra`). `from`/`to` as in [`Call`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sms {
    pub message_sid: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub body: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A billing event: `billing.*` from Stripe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Billing {
    pub stripe_event_id: Option<String>,
    pub stripe_event_type: Option<String>,
    pub customer_id: Option<String>,
    pub object_id: Option<String>,
    /// The Stripe object as Stripe sent it.
    #[serde(default)]
    pub object: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A canonical event, typed by its event type's family.
#[derive(Debug, Clone, PartialEq)]
pub enum Canonical {
    Call(Call),
    Sms(Sms),
    Billing(Billing),
    /// Any other type (`contact.*`, `vendor.*`, …): the payload as JSON.
    Other(Value),
}

impl Canonical {
    /// Parse `payload` (JSON text) as the type `event_type` names.
    pub fn parse(event_type: &str, payload: &str) -> Result<Canonical, serde_json::Error> {
        let family = event_type.split('.').next().unwrap_or("");
        Ok(match family {
            "call" => Canonical::Call(serde_json::from_str(payload)?),
            "sms" => Canonical::Sms(serde_json::from_str(payload)?),
            "billing" => Canonical::Billing(serde_json::from_str(payload)?),
            _ => Canonical::Other(serde_json::from_str(payload)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_keeps_the_fields_it_does_not_name() {
        let p =
            r#"{"call_id":"CA1","from":"+14155550100","direction":"inbound","duration_s":12,"answered_by":"direct"}"#;
        let Canonical::Call(c) = Canonical::parse("call.completed", p).unwrap() else { panic!("not a call") };
        assert_eq!(c.call_id, "CA1");
        assert_eq!(c.duration_s, Some(12));
        assert_eq!(c.extra["answered_by"], "direct");
        let back: Value = serde_json::to_value(&c).unwrap();
        assert_eq!(back["answered_by"], "direct");
        assert!(Canonical::parse("call.missed", r#"{"from":"x"}"#).is_err(), "call_id is required");
        assert!(matches!(Canonical::parse("contact.created", "{}").unwrap(), Canonical::Other(_)));
    }
}

//! Stripe events → canonical billing events.

use serde_json::{Map, Value};

use super::{NormalizeError, Normalized};

/// The canonical type of a Stripe event type.
pub fn billing_event_type(stripe_type: &str) -> String {
    if let Some(rest) = stripe_type.strip_prefix("customer.subscription.") {
        format!("billing.subscription.{rest}")
    } else if let Some(rest) = stripe_type.strip_prefix("invoice.") {
        format!("billing.invoice.{rest}")
    } else if stripe_type == "checkout.session.completed" {
        "billing.checkout.completed".into()
    } else {
        format!("billing.stripe.{stripe_type}")
    }
}

/// Normalize a verified Stripe event body.
pub fn event(body: &[u8]) -> Result<Normalized, NormalizeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| NormalizeError::Malformed(format!("not JSON: {e}")))?;
    let id = v.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or(NormalizeError::Missing("id"))?;
    let ty = v.get("type").and_then(Value::as_str).ok_or(NormalizeError::Missing("type"))?;
    let created = v.get("created").and_then(Value::as_i64).ok_or(NormalizeError::Missing("created"))?;
    if v.get("object").and_then(Value::as_str) != Some("event") {
        return Err(NormalizeError::Malformed("not a Stripe v1 event (object != \"event\")".into()));
    }
    let object = v.pointer("/data/object").cloned().unwrap_or(Value::Null);

    let mut p = Map::new();
    p.insert("stripe_event_id".into(), id.into());
    p.insert("stripe_event_type".into(), ty.into());
    for key in ["livemode", "api_version", "account"] {
        if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
            p.insert(key.into(), x.clone());
        }
    }
    if let Some(oid) = object.get("id").and_then(Value::as_str) {
        p.insert("object_id".into(), oid.into());
    }
    if let Some(customer) = object.get("customer").and_then(Value::as_str) {
        p.insert("customer_id".into(), customer.into());
    }
    if let Some(prev) = v.pointer("/data/previous_attributes") {
        p.insert("previous_attributes".into(), prev.clone());
    }
    p.insert("object".into(), object);
    Ok(Normalized {
        event_type: billing_event_type(ty),
        occurred_at: created,
        payload: Value::Object(p),
        dedupe_key: format!("stripe:{id}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types() {
        assert_eq!(billing_event_type("customer.subscription.updated"), "billing.subscription.updated");
        assert_eq!(billing_event_type("invoice.payment_failed"), "billing.invoice.payment_failed");
        assert_eq!(billing_event_type("checkout.session.completed"), "billing.checkout.completed");
        assert_eq!(billing_event_type("charge.refunded"), "billing.stripe.charge.refunded");
    }

    #[test]
    fn normalizes_subscription_update() {
        let body = br#"{"id":"evt_1","object":"event","type":"customer.subscription.updated","created":1760084505,
            "livemode":false,"api_version":"2025-03-31.basil",
            "data":{"object":{"id":"sub_1","customer":"cus_1","status":"active"},"previous_attributes":{"status":"trialing"}}}"#;
        let n = event(body).unwrap();
        assert_eq!(n.event_type, "billing.subscription.updated");
        assert_eq!(n.dedupe_key, "stripe:evt_1");
        assert_eq!(n.occurred_at, 1760084505);
        assert_eq!(n.payload["object_id"], "sub_1");
        assert_eq!(n.payload["customer_id"], "cus_1");
        assert_eq!(n.payload["previous_attributes"]["status"], "trialing");
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(event(b"{"), Err(NormalizeError::Malformed(_))));
        assert_eq!(event(br#"{"type":"x","created":1,"object":"event"}"#), Err(NormalizeError::Missing("id")));
        assert!(matches!(
            event(br#"{"id":"evt_2","type":"x","created":"2025-01-01T00:00:00Z","object":"v2.core.event"}"#),
            Err(NormalizeError::Missing("created"))
        ));
    }
}

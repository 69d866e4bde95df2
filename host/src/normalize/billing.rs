//! The per-tenant billing record kept from Stripe events: subscription (status, plan, period
//! end), last invoice, checkout and customer. Idempotent on the event id and monotonic on the
//! event's `created`: an older event never overwrites newer state (per section). Handles both
//! the pre-2025 and the `2025-03-31.basil` shapes (providers.md §5). Pure.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A tenant's billing state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Billing {
    pub customer_id: Option<String>,
    pub customer_email: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub plan: Option<String>,
    pub current_period_end: Option<i64>,
    pub cancel_at_period_end: Option<bool>,
    pub last_invoice: Option<Value>,
    pub checkout: Option<Value>,
    /// `created` of the event each section was last set from.
    pub subscription_as_of: Option<i64>,
    pub invoice_as_of: Option<i64>,
    pub customer_as_of: Option<i64>,
    /// Events applied, newest last (bounded): re-applying one changes nothing.
    #[serde(default)]
    pub applied: Vec<String>,
}

const APPLIED_KEEP: usize = 200;

fn s(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).and_then(Value::as_str).map(String::from)
}

fn newer(as_of: Option<i64>, created: i64) -> bool {
    as_of.is_none_or(|t| created >= t)
}

/// Apply one Stripe event (`stripe_type`, its `created`, id and `data.object`); true if the
/// record changed.
pub fn apply(b: &mut Billing, stripe_type: &str, created: i64, event_id: &str, object: &Value) -> bool {
    if b.applied.iter().any(|e| e == event_id) {
        return false;
    }
    let changed = if stripe_type.starts_with("customer.subscription.") {
        newer(b.subscription_as_of, created) && {
            b.subscription_as_of = Some(created);
            b.subscription_id = s(object, "/id").or(b.subscription_id.take());
            b.customer_id = s(object, "/customer").or(b.customer_id.take());
            b.status = s(object, "/status").or(b.status.take());
            b.cancel_at_period_end =
                object.get("cancel_at_period_end").and_then(Value::as_bool).or(b.cancel_at_period_end);
            b.plan = s(object, "/items/data/0/price/lookup_key")
                .or_else(|| s(object, "/items/data/0/price/nickname"))
                .or_else(|| s(object, "/items/data/0/price/id"))
                .or_else(|| s(object, "/plan/id"))
                .or(b.plan.take());
            // Before basil the period is on the subscription; from basil on, on its items.
            b.current_period_end = object
                .get("current_period_end")
                .and_then(Value::as_i64)
                .or_else(|| object.pointer("/items/data/0/current_period_end").and_then(Value::as_i64))
                .or(b.current_period_end);
            true
        }
    } else if stripe_type.starts_with("invoice.") {
        newer(b.invoice_as_of, created) && {
            b.invoice_as_of = Some(created);
            // Before basil `invoice.subscription`; from basil on, under `parent.subscription_details`.
            let sub = s(object, "/subscription").or_else(|| s(object, "/parent/subscription_details/subscription"));
            b.last_invoice = Some(json!({
                "id": object.get("id"),
                "status": object.get("status"),
                "event": stripe_type,
                "amount_due": object.get("amount_due"),
                "amount_paid": object.get("amount_paid"),
                "attempt_count": object.get("attempt_count"),
                "next_payment_attempt": object.get("next_payment_attempt"),
                "billing_reason": object.get("billing_reason"),
                "hosted_invoice_url": object.get("hosted_invoice_url"),
                "subscription_id": sub,
            }));
            if b.subscription_id.is_none() {
                b.subscription_id = sub;
            }
            b.customer_id = b.customer_id.take().or_else(|| s(object, "/customer"));
            true
        }
    } else if stripe_type == "checkout.session.completed" {
        b.checkout = Some(json!({
            "id": object.get("id"),
            "mode": object.get("mode"),
            "payment_status": object.get("payment_status"),
            "client_reference_id": object.get("client_reference_id"),
            "subscription_id": object.get("subscription"),
        }));
        b.customer_id = b.customer_id.take().or_else(|| s(object, "/customer"));
        b.subscription_id = b.subscription_id.take().or_else(|| s(object, "/subscription"));
        true
    } else if stripe_type.starts_with("customer.") && !stripe_type.starts_with("customer.subscription.") {
        newer(b.customer_as_of, created) && {
            b.customer_as_of = Some(created);
            b.customer_id = s(object, "/id").or(b.customer_id.take());
            b.customer_email = s(object, "/email").or(b.customer_email.take());
            true
        }
    } else {
        false
    };
    b.applied.push(event_id.to_string());
    if b.applied.len() > APPLIED_KEEP {
        b.applied.remove(0);
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(status: &str, basil: bool) -> Value {
        if basil {
            json!({ "id": "sub_1", "customer": "cus_1", "status": status, "cancel_at_period_end": false,
                    "items": { "data": [{ "price": { "id": "price_pro", "lookup_key": "pro" }, "current_period_end": 1_800_000_000 }] } })
        } else {
            json!({ "id": "sub_1", "customer": "cus_1", "status": status, "current_period_end": 1_700_000_000,
                    "items": { "data": [{ "price": { "id": "price_basic" } }] } })
        }
    }

    #[test]
    fn both_shapes_and_monotonic() {
        let mut b = Billing::default();
        assert!(apply(&mut b, "customer.subscription.updated", 100, "evt_1", &sub("active", false)));
        assert_eq!(b.current_period_end, Some(1_700_000_000));
        assert_eq!(b.plan.as_deref(), Some("price_basic"));
        assert!(apply(&mut b, "customer.subscription.updated", 200, "evt_2", &sub("past_due", true)));
        assert_eq!(b.current_period_end, Some(1_800_000_000));
        assert_eq!(b.plan.as_deref(), Some("pro"));
        assert_eq!(b.status.as_deref(), Some("past_due"));
        // An older event arriving late changes nothing; a repeated one neither.
        assert!(!apply(&mut b, "customer.subscription.updated", 150, "evt_old", &sub("active", false)));
        assert!(!apply(&mut b, "customer.subscription.updated", 200, "evt_2", &sub("active", true)));
        assert_eq!(b.status.as_deref(), Some("past_due"));
    }

    #[test]
    fn invoices_in_both_shapes() {
        let mut b = Billing::default();
        let pre = json!({ "id": "in_1", "status": "paid", "customer": "cus_9", "subscription": "sub_9", "amount_due": 500, "amount_paid": 500 });
        assert!(apply(&mut b, "invoice.paid", 10, "evt_i1", &pre));
        assert_eq!(b.subscription_id.as_deref(), Some("sub_9"));
        let basil = json!({ "id": "in_2", "status": "open", "amount_due": 700, "amount_paid": 0, "attempt_count": 1,
                            "parent": { "subscription_details": { "subscription": "sub_9" } } });
        assert!(apply(&mut b, "invoice.payment_failed", 20, "evt_i2", &basil));
        let inv = b.last_invoice.as_ref().unwrap();
        assert_eq!(inv["id"], "in_2");
        assert_eq!(inv["subscription_id"], "sub_9");
        assert_eq!(inv["event"], "invoice.payment_failed");
        assert!(!apply(&mut b, "invoice.paid", 15, "evt_i3", &pre));
        assert_eq!(b.last_invoice.as_ref().unwrap()["id"], "in_2");
    }

    #[test]
    fn checkout_and_customer() {
        let mut b = Billing::default();
        assert!(apply(
            &mut b,
            "checkout.session.completed",
            1,
            "evt_c",
            &json!({ "id": "cs_1", "mode": "subscription",
            "payment_status": "paid", "customer": "cus_2", "subscription": "sub_2", "client_reference_id": "acct_7" })
        ));
        assert_eq!(b.subscription_id.as_deref(), Some("sub_2"));
        assert!(apply(&mut b, "customer.updated", 2, "evt_cu", &json!({ "id": "cus_2", "email": "a@example.com" })));
        assert_eq!(b.customer_email.as_deref(), Some("a@example.com"));
        assert!(!apply(&mut b, "charge.refunded", 3, "evt_x", &json!({})));
    }
}

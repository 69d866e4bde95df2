//! Tenants that do not trust each other, tried as a hostile tenant would: its own key cannot
//! lift its limits or grant itself capabilities, and nothing it uploads or asks for starves
//! another tenant.

use reqwest::Method;
use serde_json::json;

use crate::Setup;

/// The tenant key raising its limits and granting itself capabilities: refused, naming the
/// field; the ceiling unchanged; the operator's ceiling is the only way up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_key_cannot_raise_its_limits_or_grant_itself_capabilities() {
    let s = Setup::new(&["*"]).await;
    let (_, before) = s.call(Method::GET, "/limits", None).await;

    for (raise, field) in [
        (json!({ "timeout_ms": 60_000 }), "timeout_ms"),
        (json!({ "fuel": 100_000_000_000u64 }), "fuel"),
        (json!({ "memory_bytes": 256u64 << 20 }), "memory_bytes"),
        (json!({ "output_bytes": 16u64 << 20 }), "output_bytes"),
        (json!({ "max_actions": 10_000 }), "max_actions"),
    ] {
        let (status, body) = s.call(Method::PUT, "/limits", Some(raise.clone())).await;
        assert_eq!(status, 422, "{raise}: {body}");
        assert_eq!(body["error"]["code"], "above_ceiling", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    for (grant, field) in [
        (json!({ "kv_write": true }), "kv_write"),
        (json!({ "http_allow": ["*.evil.example"] }), "http_allow"),
        (json!({ "outbound_allow": ["10.0.0.0/8"] }), "outbound_allow"),
    ] {
        let (status, body) = s.call(Method::PUT, "/limits", Some(grant.clone())).await;
        assert_eq!(status, 403, "{grant}: {body}");
        assert_eq!(body["error"]["code"], "capability_not_granted", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    // Its own ceiling is the operator's alone.
    let (status, _) = s.call(Method::PUT, "/ceiling", Some(json!({ "timeout_ms": 60_000, "kv_write": true }))).await;
    assert_eq!(status, 403);
    let (_, after) = s.call(Method::GET, "/limits", None).await;
    assert_eq!(before, after, "nothing changed");
    assert_eq!(after["ceiling"]["kv_write"], false);
    assert_eq!(after["ceiling"]["timeout_ms"], 1000, "the default ceiling is the configured default");

    // Lowering is the tenant's right; the operator raises the ceiling, then the tenant may use it.
    assert_eq!(s.call(Method::PUT, "/limits", Some(json!({ "timeout_ms": 200 }))).await.0, 200);
    let ceiling = json!({ "timeout_ms": 5000, "kv_write": true, "outbound_allow": ["10.1.0.0/16"] });
    let (status, body) = s.operator(Method::PUT, "/ceiling", Some(ceiling)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["limits"]["timeout_ms"], 200, "the tenant's own lower limit stays");
    assert_eq!(body["limits"]["kv_write"], true, "a granted capability applies at once");
    assert_eq!(body["limits"]["outbound_allow"], json!(["10.1.0.0/16"]));
    let (status, body) = s.call(Method::PUT, "/limits", Some(json!({ "timeout_ms": 5000 }))).await;
    assert_eq!((status, &body["limits"]["timeout_ms"]), (200, &json!(5000)), "{body}");
    assert_eq!(s.call(Method::PUT, "/limits", Some(json!({ "timeout_ms": 5001 }))).await.0, 422);

    // A ceiling lowered later holds the stored limits down at once.
    assert_eq!(s.operator(Method::PUT, "/ceiling", Some(json!({ "timeout_ms": 300 }))).await.0, 200);
    let (_, body) = s.call(Method::GET, "/limits", None).await;
    assert_eq!(body["limits"]["timeout_ms"], 300, "{body}");
    assert_eq!(body["limits"]["kv_write"], false, "the grant was withdrawn with the new ceiling");
    // Bad ceilings are refused.
    for bad in [json!({ "fuel": 0 }), json!({ "outbound_allow": ["not-a-cidr"] }), json!({ "nope": 1 })] {
        assert_eq!(s.operator(Method::PUT, "/ceiling", Some(bad.clone())).await.0, 422, "{bad}");
    }
}

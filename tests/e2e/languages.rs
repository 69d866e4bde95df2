//! The example plugins written in each SDK's language do the same thing: on recorded events —
//! the canonical events the real server made from signed Twilio and Stripe callbacks, and the
//! edge cases of `tests/fixtures/conformance/events.json` — the Rust, Python and JavaScript
//! versions of each return identical actions (compared as the runner reports them: payloads parsed, the
//! exact request each delivery sends), run in the real sandbox with every limit on.

use hookhost::plugin::{Kv, Limits, PluginEngine, local};
use serde_json::Value;

use crate::{STRIPE_SECRET, Setup, TWILIO_TOKEN};
use hookhost_tests::plugins;

/// Events as the API lists them, made by the real server from providers' callbacks.
async fn recorded() -> Vec<Value> {
    let s = Setup::new(&["*"]).await;
    s.call_status("CAconf1", "no-answer").await;
    s.call_status("CAconf2", "in-progress").await;
    s.call_status("CAconf2", "completed").await;
    let sms =
        [("MessageSid", "SMconf1"), ("From", "+14158675309"), ("To", "+18005551212"), ("Body", "call 415-867-5309")];
    let path = format!("/hooks/{}/twilio/sms/inbound", s.tenant);
    let sig = hookhost_tests::twilio_signature(TWILIO_TOKEN, &format!("{}{path}", s.server.public_url), &sms);
    assert_eq!(s.server.post_twilio(&path, &sig, &sms).await.status(), 200);
    for name in ["invoice_paid_basil", "subscription_updated_basil", "checkout_session_completed"] {
        let body =
            std::fs::read_to_string(format!("{}/fixtures/stripe/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let t = hookhost_tests::now_s();
        assert_eq!(s.server.stripe(&s.tenant, STRIPE_SECRET, t, &body).await.status(), 200, "{name}");
    }
    let events = s.events().await;
    assert!(events.len() >= 8, "{events:?}");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_python_and_javascript_examples_return_the_same_actions_on_recorded_events() {
    let mut events = recorded().await;
    let fixture =
        std::fs::read_to_string(format!("{}/fixtures/conformance/events.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    events.extend(serde_json::from_str::<Vec<Value>>(&fixture).unwrap());
    let twins: Vec<_> =
        plugins::PYTHON.iter().map(|p| ("Python", p)).chain(plugins::JS.iter().map(|p| ("JavaScript", p))).collect();
    assert!(twins.len() >= 4, "each of Python and JavaScript has redact-phone and keep-missed-calls: {twins:?}");
    // One engine, each component compiled once, a fresh instance per event (as the service);
    // compiled code kept where the test servers keep theirs, so the upload tests reuse it.
    let artifacts = hookhost::Config::new("", "").plugin_artifacts.expect("artifacts are kept by default");
    let engine = PluginEngine::new(Limits::default()).unwrap().with_artifacts(&artifacts, 1 << 30).unwrap();
    let engine = std::sync::Arc::new(engine);
    let limits = Limits::default();
    for (lang, (name, path)) in twins {
        let rust = plugins::ALL.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no Rust {name}")).1;
        let rust = engine.compile_in_turn(std::fs::read(rust).unwrap()).await.unwrap();
        let twin = engine.compile_in_turn(std::fs::read(path).unwrap()).await.unwrap();
        assert_eq!(twin.world(), "hookhost:plugin@0.2.0");
        for envelope in &events {
            let event = local::event_from_envelope(envelope).unwrap();
            let kv = || Kv::Map(Default::default());
            let (r, t) =
                (engine.invoke(&rust, &event, &limits, kv()).await, engine.invoke(&twin, &event, &limits, kv()).await);
            let actions = |inv: &hookhost::plugin::Invocation| match &inv.outcome {
                Ok(actions) => local::actions_json(&event, actions),
                Err((failure, message)) => panic!("{lang} {name} on {envelope}: {} {message}", failure.as_str()),
            };
            assert_eq!(actions(&r), actions(&t), "Rust and {lang} {name} on {envelope}");
        }
        eprintln!("{name}: Rust and {lang} agree on {} events", events.len());
    }
}

//! Every provider route under the same five cases: accepted, duplicate, tampered, stale
//! (where the scheme carries a timestamp) and malformed — each with its exact status, and the
//! duplicate kept as a `duplicate` receipt without a new event.

use hookhost_tests::{now_s, standard_sign, stripe_signature, twilio_signature};
use serde_json::{Value, json};

use crate::{STRIPE_SECRET, Setup, TWILIO_TOKEN};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    Accepted,
    Duplicate,
    Tampered,
    Stale,
    Malformed,
}

const VENDOR_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// Send `route`'s request for `case`; `None` when the case does not apply to the route.
async fn send(s: &Setup, exotel_token: &str, route: &str, case: Case) -> Option<u16> {
    let twilio = |path: &str, mut params: Vec<(&'static str, &'static str)>| {
        let path = format!("/hooks/{}/twilio/{path}", s.tenant);
        let url = format!("{}{path}", s.server.public_url);
        if case == Case::Malformed {
            params.retain(|(k, _)| *k != "CallSid" && *k != "MessageSid");
        }
        let signed_over = if case == Case::Tampered { vec![("CallSid", "CA_other")] } else { params.clone() };
        let sig = twilio_signature(TWILIO_TOKEN, &url, &signed_over);
        async move { s.server.post_twilio(&path, &sig, &params).await.status().as_u16() }
    };
    let call =
        vec![("CallSid", "CAroute1"), ("From", "+14158675309"), ("To", "+18005551212"), ("Direction", "inbound")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut p = call.clone();
        p.extend_from_slice(extra);
        p
    };
    Some(match route {
        "twilio/voice/inbound"
        | "twilio/voice/status"
        | "twilio/voice/dial-complete"
        | "twilio/sms/inbound"
        | "twilio/sms/status"
            if case == Case::Stale =>
        {
            return None;
        }
        "twilio/voice/inbound" => twilio("voice/inbound", with(&[("CallStatus", "ringing")])).await,
        "twilio/voice/status" => {
            twilio("voice/status", with(&[("CallStatus", "no-answer"), ("SequenceNumber", "1")])).await
        }
        "twilio/voice/dial-complete" => {
            twilio("voice/dial-complete", with(&[("DialCallStatus", "completed"), ("DialBridged", "true")])).await
        }
        "twilio/sms/inbound" => {
            twilio(
                "sms/inbound",
                vec![("MessageSid", "SMroute1"), ("From", "+14158675309"), ("To", "+18005551212"), ("Body", "STOP")],
            )
            .await
        }
        "twilio/sms/status" => {
            twilio(
                "sms/status",
                vec![
                    ("MessageSid", "SMroute2"),
                    ("MessageStatus", "delivered"),
                    ("From", "+18005551212"),
                    ("To", "+14158675309"),
                ],
            )
            .await
        }
        "stripe" => {
            let body = if case == Case::Malformed {
                json!({ "hello": "world" }).to_string()
            } else {
                json!({ "id": "evt_route1", "object": "event", "type": "invoice.paid", "created": 1_760_000_000,
                        "data": { "object": { "id": "in_r1", "status": "paid" } } })
                .to_string()
            };
            let t = if case == Case::Stale { now_s() - 301 } else { now_s() };
            let secret = if case == Case::Tampered { "whsec_not_it" } else { STRIPE_SECRET };
            s.server
                .http
                .post(s.server.url(&format!("/hooks/{}/stripe", s.tenant)))
                .header("stripe-signature", format!("t={t},v1={}", stripe_signature(secret, t, &body)))
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
        "exotel/passthru" | "exotel/status" if case == Case::Stale => return None,
        "exotel/passthru" => {
            let token = if case == Case::Tampered { "wrong-token-0000000000" } else { exotel_token };
            let sid = if case == Case::Malformed { "" } else { "CallSid=exroute1&" };
            let url = s.server.url(&format!(
                "/hooks/{}/exotel/passthru?{sid}CallType=incomplete&CallFrom=0999&token={token}",
                s.tenant
            ));
            s.server.http.get(url).send().await.unwrap().status().as_u16()
        }
        "exotel/status" => {
            let token = if case == Case::Tampered { "wrong-token-0000000000" } else { exotel_token };
            let body = if case == Case::Malformed {
                json!({ "Status": "busy" })
            } else {
                json!({ "CallSid": "exroute2", "Status": "busy" })
            };
            let url = s.server.url(&format!("/hooks/{}/exotel/status?token={token}", s.tenant));
            s.server.http.post(url).json(&body).send().await.unwrap().status().as_u16()
        }
        "telephony/acme" => {
            let body = if case == Case::Malformed {
                "{\"event_type\":".to_string()
            } else {
                json!({ "event_type": "call_ended", "payload": { "call_id": "v1" } }).to_string()
            };
            let ts = if case == Case::Stale { now_s() - 400 } else { now_s() };
            let key = if case == Case::Tampered { "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } else { VENDOR_SECRET };
            s.server
                .http
                .post(s.server.url(&format!("/hooks/{}/telephony/acme", s.tenant)))
                .header("webhook-id", "msg_route1")
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", standard_sign(key, "msg_route1", ts, &body))
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
        other => panic!("no such route {other}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_route_answers_each_case_with_its_exact_status() {
    let routes = [
        "twilio/voice/inbound",
        "twilio/voice/status",
        "twilio/voice/dial-complete",
        "twilio/sms/inbound",
        "twilio/sms/status",
        "stripe",
        "exotel/passthru",
        "exotel/status",
        "telephony/acme",
    ];
    for route in routes {
        let s = Setup::new(&["*"]).await;
        let r = s
            .server
            .authed(reqwest::Method::PUT, &format!("/v1/tenants/{}/providers/exotel", s.tenant), &s.key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let token = r.json::<Value>().await.unwrap()["callback_token"].as_str().unwrap().to_string();
        let r = s
            .server
            .authed(reqwest::Method::PUT, &format!("/v1/tenants/{}/providers/vendor/acme", s.tenant), &s.key)
            .json(&json!({ "secret": VENDOR_SECRET }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);

        for (case, want) in [
            (Case::Tampered, 401),
            (Case::Stale, 401),
            (Case::Malformed, 400),
            (Case::Accepted, 200),
            (Case::Duplicate, 200),
        ] {
            let events_before = s.events().await.len();
            let Some(got) = send(&s, &token, route, case).await else { continue };
            assert_eq!(got, want, "{route} {case:?}");
            let events_after = s.events().await.len();
            match case {
                Case::Accepted => assert!(events_after > events_before, "{route}: accepted makes events"),
                _ => assert_eq!(events_after, events_before, "{route} {case:?}: no event"),
            }
        }
        let receipts = s.server.get_json(&format!("/v1/tenants/{}/receipts", s.tenant), &s.key).await;
        let verdicts: Vec<&str> =
            receipts["data"].as_array().unwrap().iter().map(|r| r["verdict"].as_str().unwrap()).collect();
        assert_eq!(verdicts[0], "duplicate", "{route}: {verdicts:?}");
        assert_eq!(verdicts[1], "accepted", "{route}: {verdicts:?}");
        assert!(verdicts[2..].iter().all(|v| *v == "rejected"), "{route}: {verdicts:?}");
        s.server.stop().await;
    }
}

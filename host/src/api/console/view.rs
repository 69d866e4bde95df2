//! Small pieces of markup the pages share: times, JSON, badges, redacted headers, charts.
//! Everything the pages print goes through maud, which escapes it.

use maud::{Markup, html};
use serde_json::Value;

/// Unix milliseconds as `2026-12-03 14:05:09 UTC`.
pub(super) fn when_ms(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Unix seconds, as [`when_ms`].
pub(super) fn when_s(s: i64) -> String {
    when_ms(s.saturating_mul(1000))
}

/// JSON, indented, in a `<pre>`.
pub(super) fn json_block(v: &Value) -> Markup {
    html! { pre.json { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

/// A status word in a colored badge (`succeeded`, `failed`, `pending`, `dropped`, …).
pub(super) fn badge(word: &str) -> Markup {
    let class = match word {
        "succeeded" | "processed" | "accepted" | "ok" | "active" | "ready" | "enabled" => "good",
        "failed" | "dead" | "rejected" | "error" | "trap" | "disabled" => "bad",
        _ => "neutral",
    };
    html! { span class={ "badge " (class) } { (word) } }
}

/// Header names whose values are credentials or signatures: shown as `[redacted]`.
fn secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["authorization", "cookie", "signature", "token", "secret", "api-key", "apikey", "password"]
        .iter()
        .any(|s| n.contains(s))
}

/// A kept request's headers, credentials and signatures redacted.
pub(super) fn redacted_headers(headers: &Value) -> Vec<(String, String)> {
    let Some(map) = headers.as_object() else { return Vec::new() };
    map.iter()
        .map(|(name, v)| {
            let value = if secret_header(name) {
                "[redacted]".to_string()
            } else {
                v.as_str().map_or_else(|| v.to_string(), String::from)
            };
            (name.clone(), value)
        })
        .collect()
}

/// A route as kept, with a `token=` query parameter (Exotel's credential) redacted.
pub(super) fn redacted_route(route: &str) -> String {
    let Some((path, query)) = route.split_once('?') else { return route.to_string() };
    let pairs: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if secret_header(k) => format!("{k}=[redacted]"),
            _ => p.to_string(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// A bar chart of `values` as inline SVG, `label` its accessible name.
pub(super) fn bars(label: &str, values: &[i64], class: &str) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let (w, h) = (240.0, 48.0);
    let step = w / values.len().max(1) as f64;
    html! {
        svg class={ "chart " (class) } viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(label) {
            title { (label) }
            @for (i, v) in values.iter().enumerate() {
                @let bh = (*v as f64 / max) * (h - 2.0);
                rect x=(format!("{:.1}", i as f64 * step + 1.0)) y=(format!("{:.1}", h - bh)) width=(format!("{:.1}", (step - 2.0).max(1.0))) height=(format!("{:.1}", bh)) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credentials_and_signatures_are_redacted() {
        let h = json!({"X-Twilio-Signature": "abc=", "Stripe-Signature": "t=1,v1=ff", "Authorization": "Basic x",
                       "webhook-signature": "v1,xx", "Content-Type": "application/x-www-form-urlencoded"});
        let shown = redacted_headers(&h);
        for (name, value) in &shown {
            if name == "Content-Type" {
                assert_eq!(value, "application/x-www-form-urlencoded");
            } else {
                assert_eq!(value, "[redacted]", "{name}");
            }
        }
        assert_eq!(
            redacted_route("/hooks/t/exotel/status?token=s3cret&x=1"),
            "/hooks/t/exotel/status?token=[redacted]&x=1"
        );
        assert_eq!(redacted_route("/hooks/t/stripe"), "/hooks/t/stripe");
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(when_ms(1_764_770_709_000), "2025-12-03 14:05:09 UTC");
        assert_eq!(when_s(0), "1970-01-01 00:00:00 UTC");
    }
}

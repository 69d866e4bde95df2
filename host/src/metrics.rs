//! Process-wide Prometheus metrics kept in memory: counters and histograms, recorded by the code
//! that sees what they count (ingest verdicts, delivery attempts, plugin invocations) and
//! rendered in the text exposition format by `GET /metrics`, beside the gauges the API reads
//! from the store. Owns no I/O and knows nothing of HTTP or SQL; each replica exposes its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

/// A metric: its name, help, and for histograms the bucket bounds.
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub buckets: &'static [f64],
}

/// Provider requests that reached a tenant's hook route, by `provider` and `verdict`
/// (`accepted`, `duplicate`, `rejected`).
pub const INGRESS: Metric = Metric {
    name: "hookhost_ingress_total",
    help: "Provider requests by provider and verdict (accepted, duplicate, rejected).",
    buckets: &[],
};
/// Delivery and sink-write attempts by `kind`, `outcome` and the receiver's `status_class`
/// (`2xx`…`5xx`, or `none` when no status came back).
pub const ATTEMPTS: Metric = Metric {
    name: "hookhost_delivery_attempts_total",
    help: "Delivery and sink attempts by kind, outcome (succeeded, retry, failed, dead, skipped) and status class.",
    buckets: &[],
};
/// Results of work whose lease had passed to another worker, discarded, by job `kind`.
pub const STALE: Metric = Metric {
    name: "hookhost_stale_results_total",
    help: "Job results discarded because the job's lease had been taken over, by kind.",
    buckets: &[],
};
/// Plugin invocations by `outcome`.
pub const PLUGIN_RUNS: Metric =
    Metric { name: "hookhost_plugin_invocations_total", help: "Plugin invocations by outcome.", buckets: &[] };
/// Fuel each plugin invocation used.
pub const PLUGIN_FUEL: Metric = Metric {
    name: "hookhost_plugin_fuel",
    help: "Fuel (about one per wasm instruction) used per plugin invocation.",
    buckets: &[1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10],
};
/// Wall time of each plugin invocation.
pub const PLUGIN_SECONDS: Metric = Metric {
    name: "hookhost_plugin_seconds",
    help: "Wall time per plugin invocation, fresh instance included.",
    buckets: &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0],
};

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    help: BTreeMap<&'static str, (&'static str, &'static [f64])>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Add one to `metric` with these labels.
pub fn count(metric: &Metric, pairs: &[(&'static str, &str)]) {
    let mut r = REGISTRY.lock().expect("metrics lock");
    r.help.insert(metric.name, (metric.help, metric.buckets));
    *r.counters.entry((metric.name, labels(pairs))).or_default() += 1;
}

/// Record `value` in the histogram `metric` with these labels.
pub fn observe(metric: &Metric, pairs: &[(&'static str, &str)], value: f64) {
    let mut r = REGISTRY.lock().expect("metrics lock");
    r.help.insert(metric.name, (metric.help, metric.buckets));
    let h = r.histograms.entry((metric.name, labels(pairs))).or_default();
    if h.counts.is_empty() {
        h.counts = vec![0; metric.buckets.len()];
    }
    for (i, bound) in metric.buckets.iter().enumerate() {
        if value <= *bound {
            h.counts[i] += 1;
        }
    }
    h.sum += value;
    h.count += 1;
}

/// The status class of an HTTP status (`2xx` …), or `none`.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status.map(|s| s / 100) {
        Some(1) => "1xx",
        Some(2) => "2xx",
        Some(3) => "3xx",
        Some(4) => "4xx",
        Some(5) => "5xx",
        _ => "none",
    }
}

fn write_labels(out: &mut String, labels: &Labels, extra: Option<(&str, &str)>) {
    let all: Vec<String> = labels
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra)
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect();
    if !all.is_empty() {
        let _ = write!(out, "{{{}}}", all.join(","));
    }
}

/// Append every counter and histogram recorded so far, in the text exposition format.
pub fn render(out: &mut String) {
    let r = REGISTRY.lock().expect("metrics lock");
    let mut last = "";
    for ((name, labels), n) in &r.counters {
        if *name != last {
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} counter", r.help[name].0);
            last = name;
        }
        out.push_str(name);
        write_labels(out, labels, None);
        let _ = writeln!(out, " {n}");
    }
    for ((name, labels), h) in &r.histograms {
        let buckets = r.help[name].1;
        if *name != last {
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} histogram", r.help[name].0);
            last = name;
        }
        for (bound, n) in buckets.iter().zip(&h.counts) {
            let _ = write!(out, "{name}_bucket");
            write_labels(out, labels, Some(("le", &bound.to_string())));
            let _ = writeln!(out, " {n}");
        }
        let _ = write!(out, "{name}_bucket");
        write_labels(out, labels, Some(("le", "+Inf")));
        let _ = writeln!(out, " {}", h.count);
        let _ = write!(out, "{name}_sum");
        write_labels(out, labels, None);
        let _ = writeln!(out, " {}", h.sum);
        let _ = write!(out, "{name}_count");
        write_labels(out, labels, None);
        let _ = writeln!(out, " {}", h.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_HIST: Metric = Metric { name: "hookhost_test_seconds", help: "test", buckets: &[0.1, 1.0] };
    const TEST_COUNT: Metric = Metric { name: "hookhost_test_total", help: "test", buckets: &[] };

    #[test]
    fn counters_and_histograms_render_in_the_exposition_format() {
        count(&TEST_COUNT, &[("verdict", "acc\"epted")]);
        count(&TEST_COUNT, &[("verdict", "acc\"epted")]);
        observe(&TEST_HIST, &[("outcome", "ok")], 0.05);
        observe(&TEST_HIST, &[("outcome", "ok")], 0.5);
        observe(&TEST_HIST, &[("outcome", "ok")], 5.0);
        let mut out = String::new();
        render(&mut out);
        assert!(
            out.contains("# TYPE hookhost_test_total counter\nhookhost_test_total{verdict=\"acc\\\"epted\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("hookhost_test_seconds_bucket{outcome=\"ok\",le=\"0.1\"} 1\n"), "{out}");
        assert!(out.contains("hookhost_test_seconds_bucket{outcome=\"ok\",le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("hookhost_test_seconds_bucket{outcome=\"ok\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("hookhost_test_seconds_count{outcome=\"ok\"} 3\n"), "{out}");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(None), "none");
    }
}

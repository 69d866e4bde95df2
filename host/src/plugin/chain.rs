//! A tenant's plugin chain run on one event: which plugins an event type selects, and how the
//! output of one plugin feeds the next (filter → enrich → reshape).
//!
//! Each `deliver` action of a plugin becomes an input event of the next plugin (same event id,
//! the action's type and payload); `sink` and `drop` actions are kept as they are; the last
//! plugin's `deliver` actions are the chain's output. The first failure stops the chain and
//! fails the event. Owns no SQL: the caller resolves the plugins and applies the outcome.

use serde_json::Value;

use super::{Action, Compiled, Failure, Invocation, Kv, Limits, PluginEngine};
use crate::deliver::subscribed;
use crate::normalize::CanonicalEvent;
use crate::store::{ChainRule, PluginVersion};

/// One plugin of a chain, resolved and compiled.
#[derive(Debug, Clone)]
pub struct Stage {
    pub version: PluginVersion,
    pub compiled: Compiled,
}

/// Why a chain stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFailure {
    /// The plugin that failed, `name@version`.
    pub plugin: String,
    pub failure: Failure,
    pub message: String,
}

/// What running a chain did.
#[derive(Debug)]
pub struct ChainRun {
    /// Every invocation, in order, with the plugin version it ran.
    pub runs: Vec<(PluginVersion, Invocation)>,
    /// The chain's actions, or why it failed.
    pub outcome: Result<Vec<Action>, ChainFailure>,
}

impl ChainRun {
    /// Key-value writes of every invocation, in order (only when the chain succeeded).
    pub fn kv_writes(&self) -> Vec<(String, Option<String>)> {
        if self.outcome.is_err() {
            return Vec::new();
        }
        self.runs.iter().flat_map(|(_, inv)| inv.kv_writes.iter().cloned()).collect()
    }
}

/// The plugin names an event type selects: the first rule whose pattern matches (`*`,
/// `call.*`, or an exact type). `None` when no rule matches: the event passes unchanged.
pub fn select<'a>(rules: &'a [ChainRule], event_type: &str) -> Option<&'a [String]> {
    rules.iter().find(|r| subscribed(std::slice::from_ref(&r.pattern), event_type)).map(|r| r.plugins.as_slice())
}

/// Run `stages` in order on `event` under `limits`; `payload` is the JSON text of
/// `event.payload` (as stored), handed to the first stage as it is.
pub async fn run(
    engine: &PluginEngine,
    stages: &[Stage],
    event: &CanonicalEvent,
    payload: String,
    limits: &Limits,
    kv: Kv,
) -> ChainRun {
    let mut runs = Vec::new();
    // Inputs of the next stage: (event type, payload as JSON text, endpoints the delivery is
    // limited to).
    let mut inputs: Vec<(String, String, Vec<String>)> = vec![(event.event_type.clone(), payload, vec![])];
    let mut kept = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        let last = i + 1 == stages.len();
        let plugin = format!("{}@{}", stage.version.name, stage.version.version);
        let fail = |failure, message| ChainFailure { plugin: plugin.clone(), failure, message };
        let mut next = Vec::new();
        let mut output = Vec::new();
        for (event_type, payload, only) in inputs {
            let input = CanonicalEvent {
                id: event.id.clone(),
                tenant_id: event.tenant_id.clone(),
                event_type,
                occurred_at: event.occurred_at,
                source: event.source,
                is_test: event.is_test,
                payload: Value::Null,
            };
            let inv = engine.invoke_json(&stage.compiled, &input, payload, limits, kv.clone()).await;
            let outcome = inv.outcome.clone();
            runs.push((stage.version.clone(), inv));
            let actions = match outcome {
                Ok(actions) => actions,
                Err((failure, message)) => return ChainRun { runs, outcome: Err(fail(failure, message)) },
            };
            for action in actions {
                match action {
                    Action::Deliver { request: Some(_), .. } if !last => {
                        let msg = "a deliver action with a request is final: only a chain's last plugin may shape the request".into();
                        return ChainRun { runs, outcome: Err(fail(Failure::PluginError, msg)) };
                    }
                    Action::Deliver { event_type, payload, endpoints, request: None } if !last => {
                        // Checked, not parsed: the next stage gets the text.
                        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&payload) {
                            let msg = format!("deliver action payload is not JSON: {e}");
                            return ChainRun { runs, outcome: Err(fail(Failure::PluginError, msg)) };
                        }
                        next.push((event_type, payload, if endpoints.is_empty() { only.clone() } else { endpoints }));
                    }
                    Action::Deliver { event_type, payload, endpoints, request } => {
                        let endpoints = if endpoints.is_empty() { only.clone() } else { endpoints };
                        output.push(Action::Deliver { event_type, payload, endpoints, request });
                    }
                    other => kept.push(other),
                }
            }
        }
        if next.len() + output.len() + kept.len() > limits.max_actions {
            let msg = format!("the chain produced more than {} actions", limits.max_actions);
            return ChainRun { runs, outcome: Err(fail(Failure::OutputLimit, msg)) };
        }
        if last {
            output.append(&mut kept);
            return ChainRun { runs, outcome: Ok(output) };
        }
        inputs = next;
        if inputs.is_empty() {
            break;
        }
    }
    // No stages, or everything was dropped before the last stage.
    let mut output: Vec<Action> = inputs
        .into_iter()
        .map(|(event_type, payload, endpoints)| Action::Deliver { event_type, payload, endpoints, request: None })
        .collect();
    output.append(&mut kept);
    ChainRun { runs, outcome: Ok(output) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, plugins: &[&str]) -> ChainRule {
        ChainRule { pattern: pattern.into(), plugins: plugins.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = vec![rule("call.missed", &["a"]), rule("call.*", &["b", "c"]), rule("*", &["d"])];
        assert_eq!(select(&rules, "call.missed").unwrap(), ["a"]);
        assert_eq!(select(&rules, "call.answered").unwrap(), ["b", "c"]);
        assert_eq!(select(&rules, "sms.received").unwrap(), ["d"]);
        assert!(select(&rules[..2], "sms.received").is_none());
    }
}

//! The group committer's batch: every provider request waiting (accepts, call signals, kept
//! receipts) applied together in a handful of statements, whatever their number — lock and
//! read the calls they signal, apply the signals in order in memory, then write calls,
//! contacts, events, plugin jobs and receipts one multi-row statement each. The outcome of
//! each request is what applying them one at a time, in order, would give.
//!
//! Part of the store's batching writer ([`writer`](super::writer)); owns these statements only.

use std::collections::{HashMap, HashSet};

use super::*;

/// A call as the batch has it: stored, or new, with the signals of the batch applied.
struct Call {
    stored: StoredCall,
    created_at: i64,
    changed: bool,
}

/// What one request writes, and how it is answered.
enum Plan<'a> {
    Accept {
        receipt: &'a ReceiptRecord,
        event: &'a CanonicalEvent,
        key: &'a str,
    },
    Keep {
        receipt: &'a ReceiptRecord,
        verdict: Verdict,
        reason: &'a str,
    },
    Call {
        receipt: &'a ReceiptRecord,
        key: &'a str,
        already: bool,
        events: Vec<(CanonicalEvent, String)>,
        state: Box<CallState>,
    },
}

type CallKey = (String, String);

pub(super) async fn apply_all(
    requests: &[WriteRequest],
    tx: &mut sqlx::Transaction<'static, Any>,
    backend: Backend,
    stage: &mut Staged,
) -> Result<Vec<Written>> {
    let mut calls = load_calls(tx, backend, requests).await?;
    // The signals, in order, in memory; new calls' other parties may be new contacts.
    let mut plans = Vec::with_capacity(requests.len());
    let mut sightings: Vec<(usize, &ReceiptRecord, &str, String)> = Vec::new();
    for req in requests {
        plans.push(match req {
            WriteRequest::Accept { receipt, event, dedupe_key, .. } => Plan::Accept { receipt, event, key: dedupe_key },
            WriteRequest::Keep { receipt, verdict, reason, .. } => Plan::Keep { receipt, verdict: *verdict, reason },
            WriteRequest::Call { receipt, call_sid, receipt_key, occurred_at, step, .. } => {
                let key = (receipt.tenant_id.to_string(), call_sid.clone());
                let call = calls.get_mut(&key).expect("every call of the batch is loaded");
                let (already, new_call) = (
                    call.stored.state.seen.iter().any(|k| k == receipt_key),
                    !call.changed && call.stored.updated_at.is_none(),
                );
                let w = CallWrite {
                    tenant: &receipt.tenant_id,
                    call_sid,
                    source: receipt.provider,
                    receipt_key,
                    occurred_at: *occurred_at,
                    now: receipt.received_at,
                };
                let events = apply_step(call, &w, step);
                if new_call && let Some(contact) = call.stored.state.other_party().filter(|n| crate::phone::is_e164(n))
                {
                    sightings.push((plans.len(), receipt, receipt_key.as_str(), contact.to_string()));
                }
                Plan::Call { receipt, key: receipt_key, already, events, state: Box::new(call.stored.state.clone()) }
            }
        });
    }
    save_calls(tx, &calls).await?;
    let mut contact_events = first_sights(tx, &sightings).await?;
    for (i, plan) in plans.iter_mut().enumerate() {
        if let Plan::Call { events, .. } = plan {
            events.extend(contact_events.remove(&i));
        }
    }
    // Events in request order (a call's own, then its contact's), then their plugin jobs.
    let mut rows: Vec<(&CanonicalEvent, &str, i64)> = Vec::new();
    for plan in &plans {
        match plan {
            Plan::Accept { receipt, event, key } => rows.push((event, key, receipt.received_at)),
            Plan::Call { receipt, events, .. } => {
                rows.extend(events.iter().map(|(e, k)| (e, k.as_str(), receipt.received_at)))
            }
            Plan::Keep { .. } => {}
        }
    }
    let mut inserted = HashSet::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        inserted.extend(insert_events(tx, chunk).await?);
    }
    let fresh: Vec<(&CanonicalEvent, i64)> =
        rows.iter().filter(|(e, ..)| inserted.contains(&e.id)).map(|(e, _, now)| (*e, *now)).collect();
    for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
        insert_plugin_jobs(tx, stage, chunk).await?;
    }
    let known = known_events(tx, &plans, &inserted).await?;
    // The receipts, and each request's answer.
    let mut receipts = Vec::with_capacity(plans.len());
    let mut out = Vec::with_capacity(plans.len());
    for plan in &plans {
        match plan {
            Plan::Accept { receipt, event, key } => {
                let duplicate = !inserted.contains(&event.id);
                let event_id = if duplicate {
                    let id = known.get(&(receipt.tenant_id.to_string(), key.to_string()));
                    id.cloned().ok_or_else(|| StoreError::Corrupt(format!("no event holds dedupe key {key}")))?
                } else {
                    event.id.clone()
                };
                out.push(Written::Accept(Accepted { event_id, duplicate }));
            }
            Plan::Keep { .. } => out.push(Written::Keep),
            Plan::Call { already, events, state, .. } => {
                let event_ids =
                    events.iter().filter(|(e, _)| inserted.contains(&e.id)).map(|(e, _)| e.id.clone()).collect();
                out.push(Written::Call(Box::new(CallApplied {
                    event_ids,
                    duplicate: *already,
                    state: (**state).clone(),
                })));
            }
        }
    }
    for (plan, written) in plans.iter().zip(&out) {
        receipts.push(match (plan, written) {
            (Plan::Accept { receipt, key, .. }, Written::Accept(a)) => ReceiptRow {
                receipt,
                verdict: Verdict::of(a.duplicate),
                reason: None,
                dedupe_key: Some(key),
                event_id: Some(&a.event_id),
            },
            (Plan::Keep { receipt, verdict, reason }, _) => {
                ReceiptRow { receipt, verdict: *verdict, reason: Some(reason), dedupe_key: None, event_id: None }
            }
            (Plan::Call { receipt, key, already, .. }, Written::Call(c)) => ReceiptRow {
                receipt,
                verdict: Verdict::of(*already),
                reason: None,
                dedupe_key: Some(key),
                event_id: c.event_ids.first().map(String::as_str),
            },
            _ => return Err(StoreError::Corrupt("a write's outcome does not match its request".into())),
        });
    }
    for chunk in receipts.chunks(ROWS_PER_STATEMENT) {
        insert_receipts(tx, chunk).await?;
    }
    Ok(out)
}

/// Lock (PostgreSQL: in one order, so replicas never deadlock) and read every call the batch
/// signals; a call not stored yet reads as new.
async fn load_calls(
    tx: &mut sqlx::Transaction<'static, Any>,
    backend: Backend,
    requests: &[WriteRequest],
) -> Result<HashMap<CallKey, Call>> {
    let mut keys: Vec<CallKey> = requests
        .iter()
        .filter_map(|r| match r {
            WriteRequest::Call { receipt, call_sid, .. } => Some((receipt.tenant_id.to_string(), call_sid.clone())),
            _ => None,
        })
        .collect();
    keys.sort();
    keys.dedup();
    let mut calls = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        if backend == Backend::Postgres {
            // The same lock `serialize_on` takes for one call.
            let sql = format!(
                "SELECT COUNT(*) AS n FROM (SELECT pg_advisory_xact_lock(hashtextextended(v.k, 0)) FROM (VALUES {}) AS v (k)) l",
                rows_of(backend, "(CAST(? AS TEXT))", chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (tenant, sid) in chunk {
                q = q.bind(format!("{tenant}\u{1f}{sid}"));
            }
            q.fetch_one(&mut **tx).await?;
        }
        let sql = format!(
            "WITH v (c_tenant, c_sid) AS (VALUES {})
             SELECT tenant_id, call_sid, state, ended_at, updated_at FROM calls, v
             WHERE calls.tenant_id = v.c_tenant AND calls.call_sid = v.c_sid",
            rows_of(backend, "(CAST(? AS TEXT), CAST(? AS TEXT))", chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (tenant, sid) in chunk {
            q = q.bind(tenant).bind(sid);
        }
        for r in q.fetch_all(&mut **tx).await? {
            let stored = StoredCall {
                state: serde_json::from_str(&r.get::<String, _>("state")).map_err(decode("call state"))?,
                ended_at: r.get("ended_at"),
                updated_at: Some(r.get("updated_at")),
            };
            calls.insert((r.get("tenant_id"), r.get("call_sid")), Call { stored, created_at: 0, changed: false });
        }
    }
    for key in keys {
        calls.entry(key).or_insert_with(|| Call {
            stored: StoredCall { state: CallState::default(), ended_at: None, updated_at: None },
            created_at: 0,
            changed: false,
        });
    }
    Ok(calls)
}

/// Apply one signal to a call in memory; the events it emits, with their dedupe keys. The
/// parent's end is noted the first time the call waits on a dial result.
fn apply_step(call: &mut Call, w: &CallWrite<'_>, step: &CallStep) -> Vec<(CanonicalEvent, String)> {
    let emits = step(&mut call.stored.state);
    if call.stored.state.awaiting_result() {
        call.stored.ended_at = call.stored.ended_at.or(Some(w.now));
    }
    if call.stored.updated_at.is_none() && !call.changed {
        call.created_at = w.now;
    }
    call.stored.updated_at = Some(w.now);
    call.changed = true;
    emits.into_iter().map(|e| w.event(e)).collect()
}

/// Store every call the batch changed, once each, in its final state.
async fn save_calls(tx: &mut sqlx::Transaction<'static, Any>, calls: &HashMap<CallKey, Call>) -> Result<()> {
    let changed: Vec<(&CallKey, &Call)> = calls.iter().filter(|(_, c)| c.changed).collect();
    for chunk in changed.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO calls (tenant_id, call_sid, state, outcome, created_at, updated_at, ended_at) VALUES {}
             ON CONFLICT (tenant_id, call_sid) DO UPDATE SET state = excluded.state, outcome = excluded.outcome,
                 updated_at = excluded.updated_at, ended_at = excluded.ended_at",
            rows_of(Backend::of(tx), "(?, ?, ?, ?, ?, ?, ?)", chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for ((tenant, sid), call) in chunk {
            let state = &call.stored.state;
            q = q
                .bind(tenant)
                .bind(sid)
                .bind(serde_json::to_string(state).expect("call state serializes"))
                .bind(&state.outcome)
                .bind(call.created_at)
                .bind(call.stored.updated_at)
                .bind(call.stored.ended_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Note new calls' other parties as contacts; for each that is new to its tenant, and whose
/// tenant asked for `contact.*` events, the `contact.created` event of the request (by index)
/// that saw it first.
async fn first_sights(
    tx: &mut sqlx::Transaction<'static, Any>,
    sightings: &[(usize, &ReceiptRecord, &str, String)],
) -> Result<HashMap<usize, (CanonicalEvent, String)>> {
    let mut events = HashMap::new();
    for chunk in sightings.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO contacts (tenant_id, e164, messages, created_at) VALUES {}
             ON CONFLICT (tenant_id, e164) DO NOTHING RETURNING tenant_id, e164",
            rows_of(Backend::of(tx), "(?, ?, 0, ?)", chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (_, receipt, _, contact) in chunk {
            q = q.bind(receipt.tenant_id.as_str()).bind(contact).bind(receipt.received_at);
        }
        let mut created: HashSet<(String, String)> =
            q.fetch_all(&mut **tx).await?.iter().map(|r| (r.get("tenant_id"), r.get("e164"))).collect();
        let mut asked: HashMap<String, bool> = HashMap::new();
        for (i, receipt, receipt_key, contact) in chunk {
            if !created.remove(&(receipt.tenant_id.to_string(), contact.clone())) {
                continue;
            }
            let tenant = receipt.tenant_id.to_string();
            let wants = match asked.get(&tenant) {
                Some(w) => *w,
                None => *asked.entry(tenant).or_insert(shared::contact_events(tx, &receipt.tenant_id).await?),
            };
            if wants {
                events.insert(*i, contact_created(receipt, receipt_key, contact, "call"));
            }
        }
    }
    Ok(events)
}

/// For accepts whose dedupe key was already known, the stored event's id, by (tenant, key).
async fn known_events(
    tx: &mut sqlx::Transaction<'static, Any>,
    plans: &[Plan<'_>],
    inserted: &HashSet<String>,
) -> Result<HashMap<CallKey, String>> {
    let known: Vec<(&str, &str)> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::Accept { receipt, event, key } if !inserted.contains(&event.id) => {
                Some((receipt.tenant_id.as_str(), *key))
            }
            _ => None,
        })
        .collect();
    let mut ids = HashMap::new();
    for chunk in known.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH v (k_tenant, k_key) AS (VALUES {})
             SELECT tenant_id, dedupe_key, id FROM events, v WHERE events.tenant_id = v.k_tenant AND events.dedupe_key = v.k_key",
            rows_of(Backend::of(tx), "(CAST(? AS TEXT), CAST(? AS TEXT))", chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (tenant, key) in chunk {
            q = q.bind(*tenant).bind(*key);
        }
        for r in q.fetch_all(&mut **tx).await? {
            ids.insert((r.get("tenant_id"), r.get("dedupe_key")), r.get("id"));
        }
    }
    Ok(ids)
}

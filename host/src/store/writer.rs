//! The batching writer: provider requests (accepts, call signals, rejected receipts) committed
//! many to a transaction by the group committer, and the `Batched` machinery the bookkeeper
//! shares: apply a batch, fall back to one request at a time, commit.

use super::*;

/// A provider request to commit, and where to send the outcome once committed.
pub(super) enum WriteRequest {
    Accept {
        receipt: ReceiptRecord,
        event: CanonicalEvent,
        dedupe_key: String,
        reply: tokio::sync::oneshot::Sender<Result<Accepted>>,
    },
    /// A request kept as evidence only (`Rejected` or `Ignored`), with the reason.
    Keep { receipt: ReceiptRecord, verdict: Verdict, reason: String, reply: tokio::sync::oneshot::Sender<Result<()>> },
    Call {
        receipt: ReceiptRecord,
        call_sid: String,
        receipt_key: String,
        occurred_at: i64,
        step: CallStep,
        reply: tokio::sync::oneshot::Sender<Result<CallApplied>>,
    },
}

/// What a write returns once committed.
pub(super) enum Written {
    Accept(Accepted),
    Keep,
    Call(Box<CallApplied>),
}

impl Batched for WriteRequest {
    type Out = Written;

    /// Together, in a handful of statements (see [`group`](super::group)).
    async fn apply_all(
        requests: &[Self],
        tx: &mut sqlx::Transaction<'static, Any>,
        backend: Backend,
        stage: &mut Staged,
    ) -> Result<Vec<Written>> {
        super::group::apply_all(requests, tx, backend, stage).await
    }

    fn answer(self, outcome: Result<Written>) {
        let mismatch = || StoreError::Corrupt("a write's outcome does not match its request".into());
        match self {
            WriteRequest::Accept { reply, .. } => drop(reply.send(outcome.and_then(|w| match w {
                Written::Accept(a) => Ok(a),
                _ => Err(mismatch()),
            }))),
            WriteRequest::Keep { reply, .. } => drop(reply.send(outcome.and_then(|w| match w {
                Written::Keep => Ok(()),
                _ => Err(mismatch()),
            }))),
            WriteRequest::Call { reply, .. } => drop(reply.send(outcome.and_then(|w| match w {
                Written::Call(c) => Ok(*c),
                _ => Err(mismatch()),
            }))),
        }
    }
}

/// Most accepts committed together.
pub(super) const GROUP_COMMIT_MAX: usize = 256;

/// A request a batching writer task (the group committer, the bookkeeper) applies inside its
/// transaction and answers once that transaction has committed.
pub(super) trait Batched: Sized {
    type Out;
    /// Apply `requests` (at least one); their outcomes, in order. Jobs they insert are staged
    /// in `stage`, published once committed.
    async fn apply_all(
        requests: &[Self],
        tx: &mut sqlx::Transaction<'static, Any>,
        backend: Backend,
        stage: &mut Staged,
    ) -> Result<Vec<Self::Out>>;
    /// Send the outcome (`Ok` only once committed).
    fn answer(self, outcome: Result<Self::Out>);
}

/// How a batching writer takes its turns on the writer.
pub(super) struct Turns {
    /// What its requests are, for the log.
    pub(super) what: &'static str,
    /// Commits on disk before they return (see [`begin_on`]).
    pub(super) durable: bool,
    /// Where the jobs its batches insert are handed over and announced.
    pub(super) wake: Arc<Wakeups>,
}

/// A batching writer: until every sender is gone, take the requests waiting (at most `max`),
/// apply them in one transaction, commit, then answer each. A batch that fails is rolled back and applied again one request at a
/// time, so a failing request fails alone.
pub(super) async fn write_batches<R: Batched>(
    write: AnyPool,
    backend: Backend,
    mut rx: tokio::sync::mpsc::Receiver<R>,
    max: usize,
    turns: Turns,
) {
    let mut batch = Vec::with_capacity(max);
    loop {
        if batch.is_empty() && rx.recv_many(&mut batch, max).await == 0 {
            return;
        }
        match apply_batch(&write, backend, &batch, &turns).await {
            Ok(outcomes) => batch.drain(..).zip(outcomes).for_each(|(req, o)| req.answer(Ok(o))),
            Err(e) if batch.len() == 1 => {
                tracing::error!(error = %e, what = turns.what, "a write failed");
                if let Some(req) = batch.pop() {
                    req.answer(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, n = batch.len(), what = turns.what, "a batch of writes failed; applying them one by one");
                for req in batch.drain(..) {
                    let outcome = apply_batch(&write, backend, std::slice::from_ref(&req), &turns).await;
                    if let Err(e) = &outcome {
                        tracing::error!(error = %e, what = turns.what, "a write failed");
                    }
                    req.answer(outcome.map(|mut o| o.remove(0)));
                }
            }
        }
    }
}

/// Apply `requests` in one transaction and commit; their outcomes.
pub(super) async fn apply_batch<R: Batched>(
    write: &AnyPool,
    backend: Backend,
    requests: &[R],
    turns: &Turns,
) -> Result<Vec<R::Out>> {
    let mut tx = begin_on(write, backend, turns.durable).await?;
    let mut stage = Staged::new(turns.wake.clone());
    let outcomes = R::apply_all(requests, &mut tx, backend, &mut stage).await?;
    tx.commit().await?;
    stage.publish();
    Ok(outcomes)
}

/// A write transaction. `durable` commits are on disk before `commit` returns (SQLite
/// `synchronous = FULL`; PostgreSQL's default `synchronous_commit`): for everything an
/// acknowledgement promises (accepted events, API changes). Worker bookkeeping commits without
/// (SQLite `NORMAL`, PostgreSQL `synchronous_commit = off`): losing one to a power cut only
/// repeats work (at-least-once), and the next durable commit syncs it anyway.
pub(super) async fn begin_on(
    write: &AnyPool,
    backend: Backend,
    durable: bool,
) -> Result<sqlx::Transaction<'static, Any>> {
    Ok(match (backend, durable) {
        (Backend::Sqlite, true) => write.begin_with("PRAGMA synchronous = FULL; BEGIN IMMEDIATE").await?,
        (Backend::Sqlite, false) => write.begin_with("PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE").await?,
        (Backend::Postgres, true) => write.begin().await?,
        (Backend::Postgres, false) => {
            let mut tx = write.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
            tx
        }
    })
}

/// A call as stored: its state (the default when not seen yet) and when its parent ended.
pub(super) struct StoredCall {
    pub(super) state: CallState,
    pub(super) ended_at: Option<i64>,
    pub(super) updated_at: Option<i64>,
}

/// Read a call's state under its lock (held until the transaction ends).
pub(super) async fn load_call(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    tenant: &TenantId,
    call_sid: &str,
) -> Result<StoredCall> {
    serialize_on(tx, backend, tenant.as_str(), call_sid).await?;
    let row = sqlx::query("SELECT state, ended_at, updated_at FROM calls WHERE tenant_id = $1 AND call_sid = $2")
        .bind(tenant.as_str())
        .bind(call_sid)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(r) => Ok(StoredCall {
            state: serde_json::from_str(&r.get::<String, _>("state")).map_err(decode("call state"))?,
            ended_at: r.get("ended_at"),
            updated_at: Some(r.get("updated_at")),
        }),
        None => Ok(StoredCall { state: CallState::default(), ended_at: None, updated_at: None }),
    }
}

/// Who and what one write of a call state is.
pub(super) struct CallWrite<'a> {
    pub(super) tenant: &'a TenantId,
    pub(super) call_sid: &'a str,
    /// The events' source.
    pub(super) source: &'static str,
    /// The signal's identity: its events' dedupe keys are `{receipt_key}#{type}`.
    pub(super) receipt_key: &'a str,
    /// The events' time (unix s).
    pub(super) occurred_at: i64,
    /// Unix ms.
    pub(super) now: i64,
}

/// Apply `step` to a loaded call and store the state and the events it emits (each with its
/// plugin job). The parent's end is noted the first time the call waits on a dial result.
pub(super) async fn save_call(
    tx: &mut sqlx::Transaction<'_, Any>,
    stage: &mut Staged,
    w: &CallWrite<'_>,
    stored: StoredCall,
    step: &CallStep,
) -> Result<CallApplied> {
    let StoredCall { mut state, ended_at, .. } = stored;
    let emits = step(&mut state);
    let ended_at = if state.awaiting_result() { ended_at.or(Some(w.now)) } else { ended_at };
    sqlx::query(
        "INSERT INTO calls (tenant_id, call_sid, state, outcome, created_at, updated_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (tenant_id, call_sid) DO UPDATE SET state = excluded.state, outcome = excluded.outcome,
                 updated_at = excluded.updated_at, ended_at = excluded.ended_at",
    )
    .bind(w.tenant.as_str())
    .bind(w.call_sid)
    .bind(serde_json::to_string(&state).expect("call state serializes"))
    .bind(&state.outcome)
    .bind(w.now)
    .bind(w.now)
    .bind(ended_at)
    .execute(&mut **tx)
    .await?;
    let mut event_ids = Vec::new();
    for e in emits {
        let (event, key) = w.event(e);
        if insert_event_with_job(tx, stage, &event, &key, w.now).await? {
            event_ids.push(event.id);
        }
    }
    Ok(CallApplied { event_ids, duplicate: false, state })
}

impl CallWrite<'_> {
    /// An event the call emits, with its dedupe key.
    pub(super) fn event(&self, e: Emit) -> (CanonicalEvent, String) {
        let event = CanonicalEvent {
            id: crate::new_event_id(),
            tenant_id: self.tenant.clone(),
            event_type: e.event_type,
            occurred_at: self.occurred_at,
            source: self.source,
            is_test: false,
            payload: e.payload,
        };
        let key = format!("{}#{}", self.receipt_key, event.event_type);
        (event, key)
    }
}

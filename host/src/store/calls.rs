//! Tracked numbers, the per-call outcome state and the sweep that closes calls no provider
//! will close, contacts and their message threads, and each tenant's billing record.
//!
//! Part of [`Store`](super::Store); the SQL lives here, the row types in the parent module.

use super::*;

fn call_record(r: &AnyRow) -> Result<CallRecord> {
    Ok(CallRecord {
        call_sid: r.get("call_sid"),
        created_at: r.get("created_at"),
        state: serde_json::from_str(&r.get::<String, _>("state")).map_err(decode("call state"))?,
    })
}

impl Store {
    pub async fn put_number(&self, tenant: &TenantId, n: &NumberSettings) -> Result<()> {
        let mut tx = self.begin(true).await?;
        sqlx::query(
            "INSERT INTO numbers (tenant_id, e164, forward_to, label, voicemail, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, e164) DO UPDATE SET forward_to = excluded.forward_to, label = excluded.label,
                 voicemail = excluded.voicemail, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(&n.e164)
        .bind(&n.forward_to)
        .bind(&n.label)
        .bind(n.voicemail as i64)
        .bind(self.now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn number(&self, tenant: &TenantId, e164: &str) -> Result<Option<NumberSettings>> {
        let row =
            sqlx::query("SELECT e164, forward_to, label, voicemail FROM numbers WHERE tenant_id = $1 AND e164 = $2")
                .bind(tenant.as_str())
                .bind(e164)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| NumberSettings {
            e164: r.get("e164"),
            forward_to: r.get("forward_to"),
            label: r.get("label"),
            voicemail: r.get::<i64, _>("voicemail") != 0,
        }))
    }

    /// A call, if hookhost has heard of it.
    pub async fn call(&self, tenant: &TenantId, call_sid: &str) -> Result<Option<CallRecord>> {
        let row = sqlx::query("SELECT call_sid, created_at, state FROM calls WHERE tenant_id = $1 AND call_sid = $2")
            .bind(tenant.as_str())
            .bind(call_sid)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(call_record).transpose()
    }

    /// A tenant's calls, newest first, as `q` selects them.
    pub async fn calls(&self, tenant: &TenantId, q: &CallQuery) -> Result<Vec<CallRecord>> {
        let open = q.outcome.as_deref() == Some("open");
        let outcome = q.outcome.as_deref().filter(|_| !open);
        let (before_at, before_sid) = match &q.before {
            Some((at, sid)) => (Some(*at), Some(sid.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(
            "SELECT call_sid, created_at, state FROM calls
             WHERE tenant_id = $1 AND ($2 IS NULL OR created_at >= $3) AND ($4 IS NULL OR outcome = $5)
               AND ($6 = 0 OR outcome IS NULL)
               AND ($7 IS NULL OR created_at < $8 OR (created_at = $9 AND call_sid < $10))
             ORDER BY created_at DESC, call_sid DESC LIMIT $11",
        )
        .bind(tenant.as_str())
        .bind(q.since)
        .bind(q.since)
        .bind(outcome)
        .bind(outcome)
        .bind(open as i64)
        .bind(before_at)
        .bind(before_at)
        .bind(before_at)
        .bind(before_sid)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(call_record).collect()
    }

    /// In one durable transaction: read the call's state, apply `step` to it, store the
    /// state, the events it emits (each with its plugin job) and the receipt. The receipt is a
    /// `duplicate` when the state machine had already applied it.
    pub async fn apply_call(
        &self,
        receipt: &ReceiptRecord,
        call_sid: &str,
        receipt_key: &str,
        occurred_at: i64,
        step: CallStep,
    ) -> Result<CallApplied> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = WriteRequest::Call {
            receipt: receipt.clone(),
            call_sid: call_sid.to_string(),
            receipt_key: receipt_key.to_string(),
            occurred_at,
            step,
            reply,
        };
        let closed = || StoreError::Db(sqlx::Error::PoolClosed);
        self.accepts.send(request).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Close the calls no provider signal will close (oldest first, at most `limit`): those
    /// whose parent ended at least `settle` ago still waiting on a dial result, and those
    /// silent for `abandon`. Each in its own transaction under the call's lock, re-checked
    /// there, so replicas sweeping together close each call once.
    pub async fn sweep_calls(&self, settle: Duration, abandon: Duration, limit: i64) -> Result<CallsSwept> {
        let now = self.now_ms();
        let settle_before = now - settle.as_millis() as i64;
        let abandon_before = now - abandon.as_millis() as i64;
        let rows = sqlx::query(
            "SELECT tenant_id, call_sid FROM calls WHERE outcome IS NULL AND (ended_at <= $1 OR updated_at <= $2)
             ORDER BY updated_at LIMIT $3",
        )
        .bind(settle_before)
        .bind(abandon_before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut swept = CallsSwept::default();
        for r in rows {
            let tenant = TenantId::from_stored(r.get("tenant_id"));
            let call_sid: String = r.get("call_sid");
            let mut tx = self.begin(true).await?;
            let stored = load_call(&mut tx, self.backend, &tenant, &call_sid).await?;
            let sweep = if stored.state.awaiting_result() && stored.ended_at.is_some_and(|t| t <= settle_before) {
                Sweep::Settle
            } else if stored.state.outcome.is_none() && stored.updated_at.is_some_and(|t| t <= abandon_before) {
                Sweep::Abandon
            } else {
                continue; // a signal came since the listing
            };
            let key = sweep.key(&call_sid);
            let write = CallWrite {
                tenant: &tenant,
                call_sid: &call_sid,
                source: "hookhost",
                receipt_key: &key,
                occurred_at: now / 1000,
                now,
            };
            let step = call_step(&call_sid, &key, Party::default(), Signal::Sweep(sweep));
            let mut stage = self.stage();
            let applied = save_call(&mut tx, &mut stage, &write, stored, &step).await?;
            tx.commit().await?;
            stage.publish();
            tracing::info!(%tenant, %call_sid, ?sweep, outcome = ?applied.state.outcome, "open call closed by the sweeper");
            match sweep {
                Sweep::Settle => swept.settled += 1,
                Sweep::Abandon => swept.abandoned += 1,
            }
        }
        Ok(swept)
    }

    /// In one durable transaction: store `sms.received` (and the keyword's event), attach the
    /// message to the sender's contact and apply an opt-out/opt-in, and keep the receipt. A
    /// repeated `MessageSid` changes nothing and is kept as a `duplicate` receipt.
    pub async fn apply_sms(
        &self,
        receipt: &ReceiptRecord,
        receipt_key: &str,
        contact: &str,
        events: &[(String, Value)],
        opt: Option<(bool, &str)>,
    ) -> Result<Accepted> {
        let mut tx = self.begin(true).await?;
        let mut stage = self.stage();
        let now = self.now_ms();
        let tenant = &receipt.tenant_id;
        let mut event_ids = Vec::new();
        for (event_type, payload) in events {
            let event = receipt_event(receipt, event_type, payload.clone());
            let key = format!("{receipt_key}#{event_type}");
            if insert_event_with_job(&mut tx, &mut stage, &event, &key, receipt.received_at).await? {
                event_ids.push(event.id);
            }
        }
        let duplicate = event_ids.is_empty();
        if !duplicate {
            event_ids.extend(first_sight(&mut tx, &mut stage, receipt, receipt_key, contact, "sms").await?);
            let was_opted_out = sqlx::query(
                "UPDATE contacts SET messages = messages + 1, last_message_at = $1 WHERE tenant_id = $2 AND e164 = $3
                 RETURNING opted_out",
            )
            .bind(now)
            .bind(tenant.as_str())
            .bind(contact)
            .fetch_one(&mut *tx)
            .await?
            .get::<i64, _>("opted_out")
                != 0;
            if let Some((opted_out, keyword)) = opt {
                sqlx::query(
                    "UPDATE contacts SET opted_out = $1, opt_changed_at = $2, last_keyword = $3 WHERE tenant_id = $4 AND e164 = $5",
                )
                .bind(opted_out as i64)
                .bind(now)
                .bind(keyword)
                .bind(tenant.as_str())
                .bind(contact)
                .execute(&mut *tx)
                .await?;
                if opted_out != was_opted_out && contact_events(&mut tx, tenant).await? {
                    let payload = serde_json::json!({ "contact": contact, "e164": contact, "opted_out": opted_out, "keyword": keyword });
                    let event = receipt_event(receipt, "contact.updated", payload);
                    let key = format!("{receipt_key}#contact.updated");
                    if insert_event_with_job(&mut tx, &mut stage, &event, &key, now).await? {
                        event_ids.push(event.id);
                    }
                }
            }
        }
        insert_receipt(
            &mut tx,
            receipt,
            Verdict::of(duplicate),
            None,
            Some(receipt_key),
            event_ids.first().map(String::as_str),
        )
        .await?;
        tx.commit().await?;
        stage.publish();
        let event_id = event_ids.into_iter().next().unwrap_or_default();
        Ok(Accepted { event_id, duplicate })
    }

    /// A contact's thread and opt-out state.
    pub async fn contact(&self, tenant: &TenantId, e164: &str) -> Result<Option<Contact>> {
        let row = sqlx::query(
            "SELECT e164, opted_out, opt_changed_at, last_keyword, messages, last_message_at FROM contacts WHERE tenant_id = $1 AND e164 = $2",
        )
        .bind(tenant.as_str())
        .bind(e164)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Contact {
            e164: r.get("e164"),
            opted_out: r.get::<i64, _>("opted_out") != 0,
            opt_changed_at: r.get("opt_changed_at"),
            last_keyword: r.get("last_keyword"),
            messages: r.get("messages"),
            last_message_at: r.get("last_message_at"),
        }))
    }

    /// Read, change and write the tenant's billing record in one transaction. Derived state:
    /// worker-level durability (a lost commit is re-applied from the event).
    pub async fn update_billing<F>(&self, tenant: &TenantId, f: F) -> Result<bool>
    where
        F: FnOnce(&mut Billing) -> bool,
    {
        let mut tx = self.begin(false).await?;
        serialize_on(&mut tx, self.backend, "billing", tenant.as_str()).await?;
        let row = sqlx::query("SELECT record FROM billing WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let mut b: Billing = match row {
            Some(r) => serde_json::from_str(&r.get::<String, _>("record")).map_err(decode("billing"))?,
            None => Billing::default(),
        };
        let changed = f(&mut b);
        sqlx::query(
            "INSERT INTO billing (tenant_id, record, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(serde_json::to_string(&b).expect("billing serializes"))
        .bind(self.now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn billing(&self, tenant: &TenantId) -> Result<Billing> {
        let row = sqlx::query("SELECT record FROM billing WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => serde_json::from_str(&r.get::<String, _>("record")).map_err(decode("billing")),
            None => Ok(Billing::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{databases, test_keys};
    use super::*;

    fn twilio_receipt(tenant: &TenantId, at: i64) -> ReceiptRecord {
        ReceiptRecord {
            tenant_id: tenant.clone(),
            provider: "twilio",
            route: "/hooks/t/twilio/voice/status".into(),
            headers: serde_json::json!({}),
            body: Vec::new(),
            received_at: at,
        }
    }

    async fn signal(store: &Store, tenant: &TenantId, sid: &str, key: &str, signal: Signal) {
        let run = call_step(sid, key, Party::default(), signal);
        store.apply_call(&twilio_receipt(tenant, store.now_ms()), sid, key, 0, run).await.unwrap();
    }

    async fn events_of(store: &Store, tenant: &TenantId) -> Vec<(String, String)> {
        let rows = sqlx::query("SELECT event_type, payload FROM events WHERE tenant_id = $1 ORDER BY seq")
            .bind(tenant.as_str())
            .fetch_all(&store.pool)
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                let payload: Value = serde_json::from_str(&r.get::<String, _>("payload")).unwrap();
                (r.get("event_type"), payload["call_id"].as_str().unwrap_or_default().to_string())
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_sweeping_together_close_each_open_call_once() {
        for url in databases().await {
            let clock = crate::Clock::system();
            let a = Store::connect_with_clock(&url, test_keys(), clock.clone()).await.unwrap();
            let b = Store::connect_with_clock(&url, test_keys(), clock.clone()).await.unwrap();
            let tenant = TenantId::generate();
            a.create_tenant(&tenant, "t", "hash", "hk_test").await.unwrap();
            let forward = || Signal::Inbound { forward_to: Some("+14155550100".into()), voicemail: false };
            let completed = Signal::Status {
                status: "completed".into(),
                sequence: Some(2),
                duration_s: Some(40),
                recording_url: None,
            };
            // CAended: forwarded, ended, its dial result lost. CAopen: still ringing.
            signal(&a, &tenant, "CAended", "i1", forward()).await;
            signal(&a, &tenant, "CAended", "s1", completed).await;
            signal(&a, &tenant, "CAopen", "i2", forward()).await;
            let (settle, abandon) = (Duration::from_secs(60), Duration::from_secs(4 * 3600));
            assert_eq!(a.sweep_calls(settle, abandon, 100).await.unwrap(), CallsSwept::default(), "{url}: too early");

            clock.advance(Duration::from_secs(61));
            let (x, y) = tokio::join!(a.sweep_calls(settle, abandon, 100), b.sweep_calls(settle, abandon, 100));
            let (x, y) = (x.unwrap(), y.unwrap());
            assert_eq!(x.settled + y.settled, 1, "{url}: settled once across replicas");
            assert_eq!(x.abandoned + y.abandoned, 0, "{url}: a ringing call is not abandoned after a minute");
            let ended = a.call(&tenant, "CAended").await.unwrap().unwrap();
            assert_eq!(ended.state.outcome.as_deref(), Some("missed"));

            clock.advance(abandon);
            let (x, y) = tokio::join!(a.sweep_calls(settle, abandon, 100), b.sweep_calls(settle, abandon, 100));
            assert_eq!(x.unwrap().abandoned + y.unwrap().abandoned, 1, "{url}: abandoned once");
            let closing: Vec<(String, String)> =
                events_of(&a, &tenant).await.into_iter().filter(|(t, _)| t != "call.initiated").collect();
            let want = [
                ("call.completed", "CAended"),
                ("call.missed", "CAended"),
                ("call.completed", "CAopen"),
                ("call.failed", "CAopen"),
            ];
            assert_eq!(closing, want.map(|(t, c)| (t.to_string(), c.to_string())), "{url}");
            assert_eq!(
                a.sweep_calls(settle, abandon, 100).await.unwrap(),
                CallsSwept::default(),
                "{url}: nothing left"
            );
        }
    }
}

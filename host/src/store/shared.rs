//! Statements and row mappers more than one part of the store uses: inserting receipts,
//! events with their plugin job and deliveries, per-tenant caps and locks, disabling an
//! endpoint, and reading jobs, sinks, events and endpoints from rows.

use std::collections::HashSet;

use super::*;

/// Whether the tenant already has `max` rows of `table` (endpoints or sinks), counted under
/// the tenant's lock for that table, so concurrent creations cannot pass the cap together.
pub(super) async fn at_cap(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    table: &'static str,
    tenant: &TenantId,
    max: u64,
) -> Result<bool> {
    serialize_on(tx, backend, table, tenant.as_str()).await?;
    // `table` is one of two constants, never input.
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = $1");
    let n: i64 = sqlx::query(AssertSqlSafe(sql)).bind(tenant.as_str()).fetch_one(&mut **tx).await?.get("n");
    Ok(n as u64 >= max)
}

/// Serialize read-modify-write transactions on the row named by (`scope`, `key`), which may
/// not exist yet: on PostgreSQL a transaction-scoped advisory lock, so replicas take turns;
/// on SQLite nothing, as its one writer already does.
pub(super) async fn serialize_on(
    tx: &mut sqlx::Transaction<'_, Any>,
    backend: Backend,
    scope: &str,
    key: &str,
) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) l")
            .bind(format!("{scope}\u{1f}{key}"))
            .fetch_one(&mut **tx)
            .await?;
    }
    Ok(())
}

/// `n` copies of `row`, comma-separated: the VALUES of a statement that writes `n` rows at
/// once, whose `?` are its parameters in bind order. PostgreSQL gets them numbered across the
/// copies (`$1`, `$2`, …); SQLite keeps them anonymous, which it binds by position, where
/// numbered names cost it a linear search per parameter when it prepares the statement and
/// again at every bind (sqlx asks each parameter's name): quadratic in the rows of a batch.
pub(super) fn rows_of(backend: Backend, row: &str, n: usize) -> String {
    let mut out = String::with_capacity((row.len() + 8) * n);
    let mut k = 0;
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        if backend == Backend::Sqlite {
            out.push_str(row);
            continue;
        }
        for part in row.split_inclusive('?') {
            match part.strip_suffix('?') {
                Some(before) => {
                    k += 1;
                    out.push_str(before);
                    out.push('$');
                    out.push_str(&k.to_string());
                }
                None => out.push_str(part),
            }
        }
    }
    out
}

/// Most rows one multi-row statement writes (SQLite takes at most 32,766 parameters).
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// A fresh lease token for one claim.
pub(super) fn lease_token() -> i64 {
    rand::random::<i64>() & i64::MAX
}

/// Bytes of a rejected request's body kept as evidence.
pub(super) const REJECTED_BODY_KEPT: usize = 1024;

/// A receipt to insert: the request, its verdict, and what it became.
pub(super) struct ReceiptRow<'a> {
    pub(super) receipt: &'a ReceiptRecord,
    pub(super) verdict: Verdict,
    pub(super) reason: Option<&'a str>,
    pub(super) dedupe_key: Option<&'a str>,
    pub(super) event_id: Option<&'a str>,
}

pub(super) async fn insert_receipt(
    tx: &mut sqlx::AnyConnection,
    r: &ReceiptRecord,
    verdict: Verdict,
    reason: Option<&str>,
    dedupe_key: Option<&str>,
    event_id: Option<&str>,
) -> Result<()> {
    insert_receipts(tx, &[ReceiptRow { receipt: r, verdict, reason, dedupe_key, event_id }]).await
}

/// Insert receipts, in one statement (callers keep to [`ROWS_PER_STATEMENT`]).
pub(super) async fn insert_receipts(tx: &mut sqlx::AnyConnection, rows: &[ReceiptRow<'_>]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO receipts (tenant_id, provider, route, headers, body, received_at, verdict, reason, dedupe_key, event_id,
             body_len, body_sha256) VALUES {}",
        rows_of(Backend::of(tx), "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.len())
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for row in rows {
        let r = row.receipt;
        // A rejected request keeps the first KiB of its body, its length and digest.
        let (body, len, digest) = if row.verdict == Verdict::Rejected {
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&r.body));
            (&r.body[..r.body.len().min(REJECTED_BODY_KEPT)], Some(r.body.len() as i64), Some(digest))
        } else {
            (&r.body[..], None, None)
        };
        q = q
            .bind(r.tenant_id.as_str())
            .bind(r.provider)
            .bind(&r.route)
            .bind(r.headers.to_string())
            .bind(body)
            .bind(r.received_at)
            .bind(row.verdict.as_str())
            .bind(row.reason)
            .bind(row.dedupe_key)
            .bind(row.event_id)
            .bind(len)
            .bind(digest);
    }
    q.execute(tx).await?;
    Ok(())
}

/// A stored verdict, read back.
pub(super) fn verdict(r: &AnyRow) -> Result<Verdict> {
    let v: String = r.get("verdict");
    Verdict::parse(&v).ok_or_else(|| StoreError::Corrupt(format!("unknown receipt verdict {v:?}")))
}

/// Note `e164` as a contact of the tenant if it is new, and then emit `contact.created` (the
/// event's dedupe key starts with `receipt_key`); its id when it was new.
pub(super) async fn first_sight(
    tx: &mut sqlx::Transaction<'_, Any>,
    stage: &mut Staged,
    receipt: &ReceiptRecord,
    receipt_key: &str,
    e164: &str,
    via: &str,
) -> Result<Option<String>> {
    let tenant = &receipt.tenant_id;
    let created = sqlx::query(
        "INSERT INTO contacts (tenant_id, e164, messages, created_at) VALUES ($1, $2, 0, $3)
         ON CONFLICT (tenant_id, e164) DO NOTHING",
    )
    .bind(tenant.as_str())
    .bind(e164)
    .bind(receipt.received_at)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !created || !contact_events(tx, tenant).await? {
        return Ok(None);
    }
    let (event, key) = contact_created(receipt, receipt_key, e164, via);
    Ok(insert_event_with_job(tx, stage, &event, &key, receipt.received_at).await?.then_some(event.id))
}

/// The `contact.created` event of a number first seen in `via` (a call or a message) by
/// `receipt`, with its dedupe key.
pub(super) fn contact_created(
    receipt: &ReceiptRecord,
    receipt_key: &str,
    e164: &str,
    via: &str,
) -> (CanonicalEvent, String) {
    let payload = serde_json::json!({ "contact": e164, "e164": e164, "first_seen_in": via });
    (receipt_event(receipt, "contact.created", payload), format!("{receipt_key}#contact.created"))
}

/// Whether the tenant asked for `contact.*` events (read only when a contact changes: rare).
pub(super) async fn contact_events(tx: &mut sqlx::Transaction<'_, Any>, tenant: &TenantId) -> Result<bool> {
    let row = sqlx::query("SELECT contact_events FROM tenants WHERE id = $1")
        .bind(tenant.as_str())
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.get::<i64, _>("contact_events") != 0)
}

/// An event a receipt produced, at its receipt time, from its provider.
pub(super) fn receipt_event(receipt: &ReceiptRecord, event_type: &str, payload: Value) -> CanonicalEvent {
    CanonicalEvent {
        id: crate::new_event_id(),
        tenant_id: receipt.tenant_id.clone(),
        event_type: event_type.into(),
        occurred_at: receipt.received_at / 1000,
        source: receipt.provider,
        is_test: false,
        payload,
    }
}

/// A claimed job's row. A delivery whose body is shared has an empty `body` here: the claim
/// fills it from `bodies` (see [`shared_body`]). Fields a malformed row lacks read as empty, so
/// its worker fails it (no endpoint, no sink) rather than the claim failing for every job.
pub(super) fn job(r: &AnyRow) -> Job {
    let text = |column: &str| r.get::<Option<String>, _>(column).unwrap_or_default();
    let kind: String = r.get("kind");
    let work = match kind.as_str() {
        "delivery" => JobWork::Delivery {
            endpoint_id: EndpointId::from_stored(text("endpoint_id")),
            message_id: text("message_id"),
            body: text("body"),
            request: stored_shape(r),
        },
        "sink" => JobWork::Sink {
            sink_id: SinkId::from_stored(text("sink_id")),
            external_id: text("external_id"),
            version: r.get::<Option<i64>, _>("record_version").unwrap_or_default(),
            message_id: text("message_id"),
            record: text("body"),
        },
        _ => JobWork::Plugin,
    };
    Job {
        id: r.get("id"),
        tenant_id: TenantId::from_stored(r.get("tenant_id")),
        event_id: r.get("event_id"),
        lease: r.get("lease_token"),
        attempts: r.get("attempts"),
        work,
    }
}

/// A delivery row's shaped request. One that does not parse (never written so) is logged and
/// read as none: the body still goes, in the plain request.
pub(super) fn stored_shape(r: &AnyRow) -> Option<Shape> {
    let text = r.get::<Option<String>, _>("request")?;
    serde_json::from_str(&text)
        .map_err(|e| tracing::error!(error = %e, "a stored delivery request does not parse; sent without it"))
        .ok()
}

/// The row of `bodies` a claimed delivery's body is in, when it has none of its own.
pub(super) fn shared_body(r: &AnyRow) -> Option<i64> {
    r.get::<Option<String>, _>("body").is_none().then(|| r.get::<Option<i64>, _>("body_id")).flatten()
}

/// A delivery job to insert: `d` for `event_id`; with `shared`, its body is that row of
/// `bodies`, not its own.
pub(super) struct DeliveryRow<'a> {
    pub(super) tenant: &'a TenantId,
    pub(super) event_id: &'a str,
    pub(super) d: &'a NewDelivery,
    pub(super) shared: Option<i64>,
    pub(super) replay: bool,
    pub(super) now: i64,
}

/// Insert one delivery job (see [`insert_deliveries`]); its id.
pub(super) async fn insert_delivery(
    tx: &mut sqlx::Transaction<'_, Any>,
    stage: &mut Staged,
    row: DeliveryRow<'_>,
) -> Result<i64> {
    let ids = insert_deliveries(tx, stage, &[row]).await?;
    ids.first().copied().ok_or_else(|| StoreError::Corrupt("an insert returned no id".into()))
}

/// Insert delivery jobs, a few hundred to a statement. One without an ordering key is leased
/// to this process and handed to its delivery worker in memory when that has room for its
/// endpoint; any other is pending for a claim. Returns the new ids, in no particular order.
pub(super) async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, Any>,
    stage: &mut Staged,
    rows: &[DeliveryRow<'_>],
) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        // Each handed-over row gets its own lease token, which tells its id in what RETURNING gives.
        let mut handed: HashMap<i64, (Ticket, &DeliveryRow<'_>)> = HashMap::new();
        let leases: Vec<Option<(i64, i64)>> = chunk
            .iter()
            .map(|r| {
                let ticket = match r.d.ordering_key {
                    None => stage.reserve(JobKind::Delivery, r.d.endpoint_id.as_str()),
                    Some(_) => None,
                }?;
                let lease = (r.now + ticket.lease_ms(), lease_token());
                handed.insert(lease.1, (ticket, r));
                Some(lease)
            })
            .collect();
        let sql = format!(
            "INSERT INTO jobs (kind, tenant_id, event_id, event_seq, endpoint_id, message_id, body, body_id, ordering_key,
                 replay, status, run_at, created_at, updated_at, request, lease_until, lease_token)
             VALUES {} RETURNING id, lease_token",
            rows_of(
                Backend::of(tx),
                "('delivery', ?, ?, (SELECT seq FROM events WHERE tenant_id = ? AND id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                chunk.len()
            )
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (r, lease) in chunk.iter().zip(&leases) {
            let status = if lease.is_some() { JobStatus::Running } else { JobStatus::Pending };
            q = q
                .bind(r.tenant.as_str())
                .bind(r.event_id)
                .bind(r.tenant.as_str())
                .bind(r.event_id)
                .bind(&r.d.endpoint_id)
                .bind(&r.d.message_id)
                .bind(r.shared.is_none().then(|| r.d.body.to_string()))
                .bind(r.shared)
                .bind(&r.d.ordering_key)
                .bind(r.replay as i64)
                .bind(status.as_str())
                .bind(r.now)
                .bind(r.now)
                .bind(r.now)
                .bind(r.d.request.as_ref().map(|s| serde_json::to_string(s.as_ref()).expect("a shape serializes")))
                .bind(lease.map(|l| l.0))
                .bind(lease.map(|l| l.1));
        }
        for row in q.fetch_all(&mut **tx).await? {
            let id: i64 = row.get("id");
            ids.push(id);
            let token: Option<i64> = row.get("lease_token");
            let Some((ticket, r)) = token.and_then(|t| handed.remove(&t)) else { continue };
            let work = JobWork::Delivery {
                endpoint_id: r.d.endpoint_id.clone(),
                message_id: r.d.message_id.clone(),
                body: r.d.body.to_string(),
                request: r.d.request.as_deref().cloned(),
            };
            let (tenant_id, event_id) = (r.tenant.clone(), r.event_id.to_string());
            stage.hand(JobKind::Delivery, Job { id, tenant_id, event_id, lease: token, attempts: 0, work }, ticket);
        }
        if leases.iter().any(Option::is_none) {
            stage.pending(JobKind::Delivery);
        }
    }
    Ok(ids)
}

/// Insert a canonical event with its plugin job; false when its dedupe key is known.
pub(super) async fn insert_event_with_job(
    tx: &mut sqlx::Transaction<'_, Any>,
    stage: &mut Staged,
    event: &CanonicalEvent,
    dedupe_key: &str,
    now: i64,
) -> Result<bool> {
    let inserted = !insert_events(tx, &[(event, dedupe_key, now)]).await?.is_empty();
    if inserted {
        insert_plugin_jobs(tx, stage, &[(event, now)]).await?;
    }
    Ok(inserted)
}

/// Insert events (event, dedupe key, now) unless their dedupe key is known, in one statement
/// (callers keep to [`ROWS_PER_STATEMENT`]); the ids of those inserted. Of two rows with one
/// key, the first is kept.
pub(super) async fn insert_events(
    tx: &mut sqlx::Transaction<'_, Any>,
    rows: &[(&CanonicalEvent, &str, i64)],
) -> Result<HashSet<String>> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "INSERT INTO events (id, tenant_id, event_type, occurred_at, source, is_test, payload, dedupe_key, created_at, contact)
         VALUES {} ON CONFLICT (tenant_id, dedupe_key) DO NOTHING RETURNING id",
        rows_of(Backend::of(tx), "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows.len())
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for (event, key, now) in rows {
        q = q
            .bind(&event.id)
            .bind(event.tenant_id.as_str())
            .bind(&event.event_type)
            .bind(event.occurred_at)
            .bind(event.source)
            .bind(event.is_test as i64)
            .bind(event.payload.to_string())
            .bind(*key)
            .bind(*now)
            .bind(event.contact());
    }
    Ok(q.fetch_all(&mut **tx).await?.iter().map(|r| r.get::<String, _>("id")).collect())
}

/// Insert the plugin jobs of inserted events (event, now), in one statement (callers keep to
/// [`ROWS_PER_STATEMENT`]): leased to this process and handed to its router in memory when
/// its lane has room for the tenant, else pending for a claim.
pub(super) async fn insert_plugin_jobs(
    tx: &mut sqlx::Transaction<'_, Any>,
    stage: &mut Staged,
    rows: &[(&CanonicalEvent, i64)],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let leases: Vec<Option<(Ticket, i64, i64)>> = rows
        .iter()
        .map(|(event, now)| {
            let ticket = stage.reserve(JobKind::Plugin, event.tenant_id.as_str())?;
            let until = now + ticket.lease_ms();
            Some((ticket, until, lease_token()))
        })
        .collect();
    let sql = format!(
        "INSERT INTO jobs (kind, tenant_id, event_id, event_seq, status, run_at, created_at, updated_at, lease_until,
             lease_token)
         VALUES {} RETURNING id, event_id",
        rows_of(
            Backend::of(tx),
            "('plugin', ?, ?, (SELECT seq FROM events WHERE id = ?), ?, ?, ?, ?, ?, ?)",
            rows.len()
        )
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for ((event, now), lease) in rows.iter().zip(&leases) {
        let status = if lease.is_some() { JobStatus::Running } else { JobStatus::Pending };
        q = q
            .bind(event.tenant_id.as_str())
            .bind(&event.id)
            .bind(&event.id)
            .bind(status.as_str())
            .bind(*now)
            .bind(*now)
            .bind(*now)
            .bind(lease.as_ref().map(|l| l.1))
            .bind(lease.as_ref().map(|l| l.2));
    }
    let ids: HashMap<String, i64> =
        q.fetch_all(&mut **tx).await?.iter().map(|r| (r.get("event_id"), r.get("id"))).collect();
    for ((event, _), lease) in rows.iter().zip(leases) {
        let Some((ticket, _, token)) = lease else {
            stage.pending(JobKind::Plugin);
            continue;
        };
        let id =
            *ids.get(&event.id).ok_or_else(|| StoreError::Corrupt("a plugin job's insert returned no id".into()))?;
        let (tenant_id, event_id) = (event.tenant_id.clone(), event.id.clone());
        let job = Job { id, tenant_id, event_id, lease: Some(token), attempts: 0, work: JobWork::Plugin };
        stage.hand(JobKind::Plugin, job, ticket);
    }
    Ok(())
}

/// Disable an endpoint whose attempts have all failed since `since`, and store the
/// `endpoint.disabled` event (the pipeline delivers it to the tenant's other endpoints).
pub(super) async fn disable_endpoint(
    tx: &mut sqlx::Transaction<'_, Any>,
    stage: &mut Staged,
    tenant: &TenantId,
    endpoint_id: &str,
    since: i64,
    now: i64,
) -> Result<Option<String>> {
    let reason = CanonicalEvent::disabled_reason(since, now);
    let row = sqlx::query(
        "UPDATE endpoints SET enabled = 0, disabled_reason = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4 AND enabled = 1
         RETURNING url",
    )
    .bind(&reason)
    .bind(now)
    .bind(tenant.as_str())
    .bind(endpoint_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let url: String = row.get("url");
    let event = CanonicalEvent::endpoint_disabled(tenant, endpoint_id, &url, since, now);
    insert_event_with_job(tx, stage, &event, &format!("hookhost:endpoint.disabled:{endpoint_id}:{now}"), now).await?;
    Ok(Some(event.id))
}

pub(super) fn sink(r: &AnyRow, keys: &Keyring) -> Result<Sink> {
    let tenant: String = r.get("tenant_id");
    let config = keys.open(&tenant, &r.get::<String, _>("config"))?;
    let kind: String = r.get("kind");
    let types: String = r.get("event_types");
    Ok(Sink {
        id: r.get("id"),
        tenant_id: TenantId::from_stored(r.get("tenant_id")),
        name: r.get("name"),
        config: serde_json::from_str(&config)
            .and_then(|settings| crate::sink::SinkConfig::from_stored(&kind, settings))
            .map_err(decode("sink config"))?,
        event_types: serde_json::from_str(&types).map_err(decode("sink event_types"))?,
        external_id_field: r.get("external_id_field"),
    })
}

pub(super) fn stored_event(r: &AnyRow) -> Result<StoredEvent> {
    let payload: String = r.get("payload");
    let source: String = r.get("source");
    let status: String = r.get("status");
    Ok(StoredEvent {
        seq: r.get("seq"),
        event: CanonicalEvent {
            id: r.get("id"),
            tenant_id: TenantId::from_stored(r.get("tenant_id")),
            event_type: r.get("event_type"),
            occurred_at: r.get("occurred_at"),
            source: crate::normalize::source_name(&source)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown event source {source:?}")))?,
            is_test: r.get::<i64, _>("is_test") != 0,
            payload: serde_json::from_str(&payload).map_err(decode("event payload"))?,
        },
        payload_json: payload,
        status: EventStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event status {status:?}")))?,
        error: r.get("error"),
    })
}

pub(super) fn endpoint(r: &AnyRow, keys: &Keyring) -> Result<Endpoint> {
    let tenant: String = r.get("tenant_id");
    let open = |column: &str| r.get::<Option<String>, _>(column).map(|s| keys.open(&tenant, &s)).transpose();
    let signing: String = r.get("signing");
    let names: Option<String> = r.get("signature_headers");
    let types: String = r.get("event_types");
    let headers: String = r.get("headers");
    Ok(Endpoint {
        id: r.get("id"),
        tenant_id: TenantId::from_stored(r.get("tenant_id")),
        url: r.get("url"),
        event_types: serde_json::from_str(&types).map_err(decode("endpoint event_types"))?,
        headers: serde_json::from_str(&headers).map_err(decode("endpoint headers"))?,
        secret: open("secret")?.unwrap_or_default(),
        enabled: r.get::<i64, _>("enabled") != 0,
        description: r.get("description"),
        signing: SigningStyle::parse(&signing)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown signing style {signing:?}")))?,
        timeout_ms: r.get("timeout_ms"),
        ordered_by: r.get("ordered_by"),
        rate_limit_per_s: r.get("rate_limit_per_s"),
        previous_secret: open("previous_secret")?,
        previous_secret_until: r.get("previous_secret_until"),
        disabled_reason: r.get("disabled_reason"),
        failing_since: r.get("failing_since"),
        header_names: names
            .map(|n| serde_json::from_str(&n))
            .transpose()
            .map_err(decode("endpoint signature_headers"))?
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_of_numbers_placeholders_across_rows() {
        use super::Backend;
        let pg = Backend::Postgres;
        assert_eq!(
            super::rows_of(pg, "(?, CAST(? AS TEXT), 1)", 2),
            "($1, CAST($2 AS TEXT), 1), ($3, CAST($4 AS TEXT), 1)"
        );
        assert_eq!(super::rows_of(pg, "(?)", 1), "($1)");
        assert_eq!(super::rows_of(pg, "(?)", 0), "");
        assert_eq!(
            super::rows_of(Backend::Sqlite, "(?, CAST(? AS TEXT))", 2),
            "(?, CAST(? AS TEXT)), (?, CAST(? AS TEXT))"
        );
    }
}

//! The `hookhost` binary: parses the command line and environment, then calls the library.
//! `hookhost serve` runs the service; `hookhost plugin run|new|dry-run` are plugin authors' and
//! tenants' tools.

mod demo;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hookhost::Config;
use hookhost::config::{DEFAULT_RETRY_SCHEDULE, parse_cidrs, parse_duration, parse_schedule};
use hookhost::ingest::throttle::Rate;
use hookhost::plugin::template::{self, SdkSource};
use hookhost::plugin::{Limits, PluginEngine, chain::Stage, dryrun, local, stored};
use hookhost::secrets::{self, Keyring};
use hookhost::store::{PluginVersion, Store};
use serde_json::Value;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "hookhost", version, about = "Multi-tenant webhook ingest, wasm transform and signed delivery")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: HTTP API, provider hooks, plugin and delivery workers.
    Serve(Box<ServeArgs>),
    /// Plugin author tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// A newcomer's tour: the service on a temporary database with a demo tenant, a local
    /// receiver, the redact-phone plugin and signed sample callbacks; prints the console URL.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// The key secrets are sealed with at rest.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Print a fresh key for HOOKHOST_SECRET_KEY.
    NewKey,
    /// Seal every stored secret with a new key. SQLite with a key file: the file is replaced
    /// (stop the service first). Otherwise the new key is printed: set HOOKHOST_SECRET_KEY to
    /// "<new>,<old>" on every replica, restart them, then drop the old key.
    RotateKey {
        #[arg(long, env = "HOOKHOST_DATABASE_URL", default_value = "sqlite://hookhost.db")]
        database_url: String,
        /// The current keys (default: the SQLite key file).
        #[arg(long, env = "HOOKHOST_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HOOKHOST_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Database URL; SQLite files are created on first run.
    #[arg(long, env = "HOOKHOST_DATABASE_URL", default_value = "sqlite://hookhost.db")]
    database_url: String,
    /// Keys that seal secrets at rest (base64 of 32 bytes; several comma-separated while
    /// rotating, the first seals). SQLite without it: a key file beside the database.
    #[arg(long, env = "HOOKHOST_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Operator bearer token; generated and printed at start when unset.
    #[arg(long, env = "HOOKHOST_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Base URL providers sign against (default: http:// + the listen address).
    #[arg(long, env = "HOOKHOST_PUBLIC_URL")]
    public_url: Option<String>,
    /// Delays between delivery attempts.
    #[arg(long, env = "HOOKHOST_RETRY_SCHEDULE", default_value = DEFAULT_RETRY_SCHEDULE)]
    retry_schedule: String,
    /// Outbound CIDRs allowed although internal (loopback, private, link-local).
    #[arg(long, env = "HOOKHOST_OUTBOUND_ALLOW", default_value = "")]
    outbound_allow: String,
    /// Largest provider request body, bytes.
    #[arg(long, env = "HOOKHOST_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    max_body_bytes: usize,
    /// Time an endpoint has to answer.
    #[arg(long, env = "HOOKHOST_DELIVERY_TIMEOUT", default_value = "30s")]
    delivery_timeout: String,
    /// Stripe signature timestamp tolerance.
    #[arg(long, env = "HOOKHOST_STRIPE_TOLERANCE", default_value = "300s")]
    stripe_tolerance: String,
    /// Deliveries in flight at once to one endpoint.
    #[arg(long, env = "HOOKHOST_ENDPOINT_CONCURRENCY", default_value_t = 16)]
    endpoint_concurrency: usize,
    /// Disable an endpoint whose every attempt failed for this long (`off`: never).
    #[arg(long, env = "HOOKHOST_ENDPOINT_DISABLE_AFTER", default_value = "5d")]
    endpoint_disable_after: String,
    /// How long a rotated-out endpoint secret keeps signing.
    #[arg(long, env = "HOOKHOST_SECRET_OVERLAP", default_value = "24h")]
    secret_overlap: String,
    /// Allow plain-http endpoint URLs to any host.
    #[arg(long, env = "HOOKHOST_ALLOW_HTTP", default_value_t = false)]
    allow_http: bool,
    /// How long a console sign-in lasts.
    #[arg(long, env = "HOOKHOST_CONSOLE_SESSION", default_value = "8h")]
    console_session: String,
    /// Console sign-in attempts per source address: rate per second, burst.
    #[arg(long, env = "HOOKHOST_CONSOLE_SIGN_INS", default_value = "0.2,10")]
    console_sign_ins: String,
    /// How long a worker holds a claimed job before another worker (or replica) may take it
    /// over.
    #[arg(long, env = "HOOKHOST_JOB_LEASE", default_value = "120s")]
    job_lease: String,
    /// Plugin invocations in flight at once.
    #[arg(long, env = "HOOKHOST_PLUGIN_CONCURRENCY", default_value_t = 16)]
    plugin_concurrency: usize,
    /// Plugin invocations of one tenant in flight at once (the noisy-neighbour bound).
    #[arg(long, env = "HOOKHOST_PLUGIN_TENANT_CONCURRENCY", default_value_t = 4)]
    plugin_tenant_concurrency: usize,
    /// Threads that run plugins, apart from those answering HTTP (0: share them; default: one
    /// per core).
    #[arg(long, env = "HOOKHOST_PLUGIN_THREADS")]
    plugin_threads: Option<usize>,
    /// Keys each tenant's key-value store may hold.
    #[arg(long, env = "HOOKHOST_KV_MAX_KEYS", default_value_t = 10_000)]
    kv_max_keys: u64,
    /// Attempts of a plugin job whose failure may pass (host fault, retryable plugin error).
    #[arg(long, env = "HOOKHOST_PLUGIN_ATTEMPTS", default_value_t = 5)]
    plugin_attempts: u32,
    /// Delay before a plugin job's second attempt; doubles after each.
    #[arg(long, env = "HOOKHOST_PLUGIN_RETRY_BACKOFF", default_value = "1s")]
    plugin_retry_backoff: String,
    /// Plugin compilations at once (each on one core).
    #[arg(long, env = "HOOKHOST_COMPILE_CONCURRENCY", default_value_t = 1)]
    compile_concurrency: usize,
    /// Largest plugin component accepted on upload, bytes.
    #[arg(long, env = "HOOKHOST_MAX_PLUGIN_BYTES", default_value_t = hookhost::config::DEFAULT_MAX_PLUGIN_BYTES)]
    max_plugin_bytes: usize,
    /// Directory where compiled plugins are kept between runs (`off`: not kept).
    #[arg(long, env = "HOOKHOST_PLUGIN_ARTIFACTS")]
    plugin_artifacts: Option<String>,
    /// Most bytes of compiled plugins kept in HOOKHOST_PLUGIN_ARTIFACTS.
    #[arg(long, env = "HOOKHOST_PLUGIN_ARTIFACTS_BYTES", default_value_t = 1 << 30)]
    plugin_artifacts_bytes: u64,
    /// Linear memory kept mapped per sandbox pool slot between instances, bytes.
    #[arg(long, env = "HOOKHOST_PLUGIN_KEEP_RESIDENT", default_value_t = hookhost::plugin::DEFAULT_KEEP_RESIDENT)]
    plugin_keep_resident: usize,
    /// Compiled plugin code kept in memory, bytes.
    #[arg(long, env = "HOOKHOST_PLUGIN_CACHE_BYTES", default_value_t = hookhost::plugin::DEFAULT_CACHE_BYTES)]
    plugin_cache_bytes: usize,
    /// Named plugins per tenant.
    #[arg(long, env = "HOOKHOST_MAX_PLUGINS", default_value_t = 20)]
    max_plugins: u64,
    /// Versions per plugin.
    #[arg(long, env = "HOOKHOST_MAX_PLUGIN_VERSIONS", default_value_t = 50)]
    max_plugin_versions: u64,
    /// Component bytes stored per tenant.
    #[arg(long, env = "HOOKHOST_MAX_PLUGIN_STORAGE_BYTES", default_value_t = 256 << 20)]
    max_plugin_storage_bytes: u64,
    /// Endpoints per tenant.
    #[arg(long, env = "HOOKHOST_MAX_ENDPOINTS", default_value_t = 50)]
    max_endpoints: u64,
    /// Sinks per tenant.
    #[arg(long, env = "HOOKHOST_MAX_SINKS", default_value_t = 20)]
    max_sinks: u64,
    /// Bytes one event may enqueue across its deliveries and sink writes.
    #[arg(long, env = "HOOKHOST_MAX_EVENT_FANOUT_BYTES", default_value_t = 16 << 20)]
    max_event_fanout_bytes: usize,
    /// Rejected provider requests per source address: rate per second, burst.
    #[arg(long, env = "HOOKHOST_REJECTED_PER_ADDRESS", default_value = "20,100")]
    rejected_per_address: String,
    /// Rejected provider requests per tenant: rate per second, burst.
    #[arg(long, env = "HOOKHOST_REJECTED_PER_TENANT", default_value = "100,500")]
    rejected_per_tenant: String,
    /// How long receipts, events, finished jobs, attempts and plugin runs are kept.
    #[arg(long, env = "HOOKHOST_RETENTION", default_value = "30d")]
    retention: String,
    /// How long rejected receipts are kept.
    #[arg(long, env = "HOOKHOST_REJECTED_RETENTION", default_value = "7d")]
    rejected_retention: String,
    /// How long after a call ended its missing dial result is waited for.
    #[arg(long, env = "HOOKHOST_CALL_SETTLE", default_value = "60s")]
    call_settle: String,
    /// How long an open call may go without a signal before it closes as failed.
    #[arg(long, env = "HOOKHOST_CALL_ABANDON", default_value = "4h")]
    call_abandon: String,
    /// Connections open at once on the listener.
    #[arg(long, env = "HOOKHOST_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Time a client has to send a request's headers.
    #[arg(long, env = "HOOKHOST_HEADER_TIMEOUT", default_value = "10s")]
    header_timeout: String,
    /// Time a client has to send a request's body.
    #[arg(long, env = "HOOKHOST_BODY_TIMEOUT", default_value = "30s")]
    body_timeout: String,
    /// Bearer token GET /metrics requires (open when unset).
    #[arg(long, env = "HOOKHOST_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Longest a dry-run request works.
    #[arg(long, env = "HOOKHOST_DRY_RUN_TIMEOUT", default_value = "30s")]
    dry_run_timeout: String,
    /// The default ceiling over every tenant's own limits, and the capabilities granted to
    /// all (a JSON object: limit fields, `kv_write`, `http_allow`, `outbound_allow`).
    #[arg(long, env = "HOOKHOST_TENANT_CEILING", default_value = "{}")]
    tenant_ceiling: String,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(clap::Args)]
struct LimitArgs {
    /// Fuel per plugin invocation.
    #[arg(long, env = "HOOKHOST_PLUGIN_FUEL", default_value_t = Limits::default().fuel)]
    plugin_fuel: u64,
    /// Wall-clock deadline per plugin invocation.
    #[arg(long, env = "HOOKHOST_PLUGIN_TIMEOUT", default_value = "1s")]
    plugin_timeout: String,
    /// Linear memory cap per plugin instance, bytes (at most 256 MiB).
    #[arg(long, env = "HOOKHOST_PLUGIN_MEMORY_BYTES", default_value_t = Limits::default().memory_bytes)]
    plugin_memory_bytes: usize,
    /// Output cap per invocation (sum of action payloads), bytes.
    #[arg(long, env = "HOOKHOST_PLUGIN_OUTPUT_BYTES", default_value_t = Limits::default().output_bytes)]
    plugin_output_bytes: usize,
    /// Actions per invocation.
    #[arg(long, env = "HOOKHOST_PLUGIN_MAX_ACTIONS", default_value_t = Limits::default().max_actions)]
    plugin_max_actions: usize,
}

impl LimitArgs {
    fn limits(&self) -> anyhow::Result<Limits> {
        Ok(Limits {
            fuel: self.plugin_fuel,
            timeout: parse_duration(&self.plugin_timeout)?,
            memory_bytes: self.plugin_memory_bytes,
            output_bytes: self.plugin_output_bytes,
            max_actions: self.plugin_max_actions,
            ..Limits::default()
        })
    }
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run a plugin component on a fixture event and print its actions.
    Run {
        /// The component, e.g. target/wasm32-wasip2/release/my_plugin.wasm.
        #[arg(long)]
        component: PathBuf,
        /// The event: an envelope `{"event_type", "payload", …}` as endpoints receive it.
        #[arg(long)]
        event: PathBuf,
        /// Key-value entries the plugin can read, `key=value` (repeatable).
        #[arg(long = "kv")]
        kv: Vec<String>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Create a new plugin project NAME: a Rust crate (builds with `cargo build --release
    /// --target wasm32-wasip2`), a Python app (`--lang python`, builds with componentize-py) or a
    /// JavaScript app (`--lang js`, an npm project that builds with componentize-js).
    New {
        name: String,
        /// `rust`, `python` or `js`.
        #[arg(long, default_value = "rust")]
        lang: template::Lang,
        /// Directory to create it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path to hookhost's `sdk/`, `sdk-python/` or `sdk-js/` (default: the checkout this binary was built from).
        #[arg(long, conflicts_with = "sdk_version")]
        sdk_path: Option<PathBuf>,
        /// Depend on the SDK from a registry at this version instead.
        #[arg(long)]
        sdk_version: Option<String>,
    },
    /// Run a plugin version on a tenant's most recent stored events beside the active version of
    /// the same plugin, with no side effects, and print what each produced.
    DryRun {
        /// The service's database.
        #[arg(long, env = "HOOKHOST_DATABASE_URL", default_value = "sqlite://hookhost.db")]
        database_url: String,
        /// The service's secret keys (default: the SQLite key file).
        #[arg(long, env = "HOOKHOST_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        #[arg(long)]
        tenant: String,
        /// The plugin's name (its active version is the comparison).
        #[arg(long)]
        name: String,
        /// A stored version of the plugin to try.
        #[arg(long, required_unless_present = "component", conflicts_with = "component")]
        version: Option<i64>,
        /// Or a component file not uploaded yet.
        #[arg(long)]
        component: Option<PathBuf>,
        /// How many of the newest events.
        #[arg(long, default_value_t = 20)]
        last: i64,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_env("HOOKHOST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // One JSON object per line (with the current spans: tenant, event id) for log shippers.
    match std::env::var("HOOKHOST_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().with_current_span(true).with_span_list(false).init(),
        Ok("text") | Err(_) => logs.init(),
        Ok(other) => anyhow::bail!("HOOKHOST_LOG_FORMAT must be text or json, not {other:?}"),
    }
    match Cli::parse().command {
        Command::Serve(args) => serve(*args).await,
        Command::Demo { listen } => demo::run(&listen).await,
        Command::Plugin { command: PluginCommand::Run { component, event, kv, limits } } => {
            plugin_run(component, event, kv, limits.limits()?).await
        }
        Command::Plugin { command: PluginCommand::New { name, lang, dir, sdk_path, sdk_version } } => {
            let sdk = match (sdk_path, sdk_version) {
                (Some(p), _) => SdkSource::Path(p),
                (None, Some(v)) => SdkSource::Version(v),
                (None, None) => SdkSource::from_build(lang),
            };
            let created = template::create(&dir, &name, lang, &sdk)?;
            match lang {
                template::Lang::Rust => println!(
                    "created {}\n  cd {0} && cargo test && cargo build --release --target wasm32-wasip2",
                    created.display()
                ),
                template::Lang::Python => {
                    println!("created {}\n  see {0}/README.md: unittest, build, plugin run", created.display())
                }
                template::Lang::Js => println!(
                    "created {}\n  cd {0} && npm install && npm test && npm run build (README.md: plugin run, upload)",
                    created.display()
                ),
            }
            Ok(())
        }
        Command::Plugin {
            command: PluginCommand::DryRun { database_url, secret_key, tenant, name, version, component, last, limits },
        } => {
            let keys = Keyring::load(secret_key.as_deref(), &database_url)?;
            plugin_dry_run(&database_url, keys, &tenant, &name, version, component, last, limits.limits()?).await
        }
        Command::Secrets { command: SecretsCommand::NewKey } => {
            println!("{}", secrets::new_key());
            Ok(())
        }
        Command::Secrets { command: SecretsCommand::RotateKey { database_url, secret_key } } => {
            rotate_key(&database_url, secret_key.as_deref()).await
        }
    }
}

/// Seal every stored secret with a fresh key (the store seals what is not under its first key
/// when it opens), then hand the key over.
async fn rotate_key(database_url: &str, current: Option<&str>) -> anyhow::Result<()> {
    let old = Keyring::load(current, database_url)?;
    let new_key = secrets::new_key();
    let key_file = secrets::key_file_of(database_url).filter(|_| current.is_none());
    let old_spec = match (&key_file, current) {
        (Some(path), _) => std::fs::read_to_string(path)?.trim().to_string(),
        (None, Some(spec)) => spec.to_string(),
        (None, None) => bail!("no current key"),
    };
    drop(old);
    let both = Keyring::parse(&format!("{new_key},{old_spec}"))?;
    let store = Store::connect(database_url, both).await.with_context(|| format!("opening {database_url}"))?;
    store.close().await;
    match key_file {
        Some(path) => {
            secrets::write_key_file(&path, &new_key)?;
            eprintln!("every secret is sealed with the new key, now in {} (mode 0600)", path.display());
        }
        None => {
            println!("{new_key}");
            eprintln!(
                "every secret is sealed with the key printed above: set HOOKHOST_SECRET_KEY=\"<new>,<old>\" on every replica, restart them, then drop the old key"
            );
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let admin_token = match args.admin_token.filter(|t| !t.is_empty()) {
        Some(t) => t,
        None => {
            let t = format!("adm_{}", hex::encode(rand::random::<[u8; 24]>()));
            eprintln!("HOOKHOST_ADMIN_TOKEN is not set; the operator token for this run is:\n  {t}");
            t
        }
    };
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let mut config = Config::new(args.database_url, admin_token);
    config.secret_key = args.secret_key.filter(|k| !k.trim().is_empty());
    config.public_url =
        args.public_url.unwrap_or_else(|| format!("http://{}", args.listen)).trim_end_matches('/').to_string();
    config.retry_schedule = parse_schedule(&args.retry_schedule).context("HOOKHOST_RETRY_SCHEDULE")?;
    config.outbound_allow = parse_cidrs(&args.outbound_allow).context("HOOKHOST_OUTBOUND_ALLOW")?;
    config.max_body_bytes = args.max_body_bytes;
    config.delivery_timeout = parse_duration(&args.delivery_timeout).context("HOOKHOST_DELIVERY_TIMEOUT")?;
    config.stripe_tolerance = parse_duration(&args.stripe_tolerance).context("HOOKHOST_STRIPE_TOLERANCE")?;
    config.plugin_limits = args.limits.limits()?;
    config.tenant_ceiling =
        serde_json::from_str(&args.tenant_ceiling).context("HOOKHOST_TENANT_CEILING is not JSON")?;
    config.job_lease = parse_duration(&args.job_lease).context("HOOKHOST_JOB_LEASE")?;
    config.plugin_concurrency = args.plugin_concurrency.max(1);
    config.plugin_tenant_concurrency = args.plugin_tenant_concurrency.max(1);
    config.kv_max_keys = args.kv_max_keys;
    config.plugin_attempts = args.plugin_attempts.max(1);
    config.plugin_retry_backoff =
        parse_duration(&args.plugin_retry_backoff).context("HOOKHOST_PLUGIN_RETRY_BACKOFF")?;
    config.compile_concurrency = args.compile_concurrency.max(1);
    config.plugin_cache_bytes = args.plugin_cache_bytes;
    config.max_plugin_bytes = args.max_plugin_bytes;
    config.plugin_artifacts_bytes = args.plugin_artifacts_bytes;
    config.plugin_keep_resident = args.plugin_keep_resident;
    match args.plugin_artifacts.as_deref().map(str::trim) {
        None | Some("") => {}
        Some("off") => config.plugin_artifacts = None,
        Some(dir) => config.plugin_artifacts = Some(dir.into()),
    }
    config.max_plugins = args.max_plugins;
    config.max_plugin_versions = args.max_plugin_versions;
    config.max_plugin_storage_bytes = args.max_plugin_storage_bytes;
    config.max_endpoints = args.max_endpoints;
    config.max_sinks = args.max_sinks;
    config.max_event_fanout_bytes = args.max_event_fanout_bytes;
    config.rejected_per_address =
        Rate::parse(&args.rejected_per_address).map_err(anyhow::Error::msg).context("HOOKHOST_REJECTED_PER_ADDRESS")?;
    config.rejected_per_tenant =
        Rate::parse(&args.rejected_per_tenant).map_err(anyhow::Error::msg).context("HOOKHOST_REJECTED_PER_TENANT")?;
    config.retention = parse_duration(&args.retention).context("HOOKHOST_RETENTION")?;
    config.rejected_retention = parse_duration(&args.rejected_retention).context("HOOKHOST_REJECTED_RETENTION")?;
    config.call_settle = parse_duration(&args.call_settle).context("HOOKHOST_CALL_SETTLE")?;
    config.call_abandon = parse_duration(&args.call_abandon).context("HOOKHOST_CALL_ABANDON")?;
    config.max_connections = args.max_connections.max(1);
    config.header_timeout = parse_duration(&args.header_timeout).context("HOOKHOST_HEADER_TIMEOUT")?;
    config.body_timeout = parse_duration(&args.body_timeout).context("HOOKHOST_BODY_TIMEOUT")?;
    config.metrics_token = args.metrics_token.filter(|t| !t.is_empty());
    config.dry_run_timeout = parse_duration(&args.dry_run_timeout).context("HOOKHOST_DRY_RUN_TIMEOUT")?;
    if let Some(threads) = args.plugin_threads {
        config.plugin_threads = threads;
    }
    config.endpoint_concurrency = args.endpoint_concurrency.max(1);
    config.endpoint_disable_after = match args.endpoint_disable_after.as_str() {
        "off" | "never" => None,
        d => Some(parse_duration(d).context("HOOKHOST_ENDPOINT_DISABLE_AFTER")?),
    };
    config.secret_overlap = parse_duration(&args.secret_overlap).context("HOOKHOST_SECRET_OVERLAP")?;
    config.console_session = parse_duration(&args.console_session).context("HOOKHOST_CONSOLE_SESSION")?;
    config.console_sign_ins =
        Rate::parse(&args.console_sign_ins).map_err(anyhow::Error::msg).context("HOOKHOST_CONSOLE_SIGN_INS")?;
    config.allow_http = args.allow_http;
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
    };
    hookhost::run(config, listener, shutdown).await?;
    Ok(())
}

async fn plugin_run(component: PathBuf, event: PathBuf, kv: Vec<String>, limits: Limits) -> anyhow::Result<()> {
    let bytes = std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
    let text = std::fs::read_to_string(&event).with_context(|| format!("reading {}", event.display()))?;
    let v: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", event.display()))?;
    let event = local::event_from_envelope(&v)?;
    let mut map = HashMap::new();
    for entry in kv {
        let Some((k, val)) = entry.split_once('=') else { bail!("--kv takes key=value, got {entry:?}") };
        map.insert(k.to_string(), val.to_string());
    }
    let report = local::run(bytes, &event, map, limits).await?;
    println!("{}", serde_json::to_string_pretty(&report.json)?);
    if !report.ok {
        std::process::exit(2);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn plugin_dry_run(
    database_url: &str,
    keys: Keyring,
    tenant: &str,
    name: &str,
    version: Option<i64>,
    component: Option<PathBuf>,
    last: i64,
    limits: Limits,
) -> anyhow::Result<()> {
    let store = Store::connect(database_url, keys).await.with_context(|| format!("opening {database_url}"))?;
    let tenant = store.tenant(tenant).await?.with_context(|| format!("no tenant {tenant} in {database_url}"))?.id;
    // Dry runs fetch as the service would (GET and HEAD only), under the default outbound policy.
    let fetcher = hookhost::plugin::fetch::Fetcher::new(Default::default())?;
    let engine = std::sync::Arc::new(PluginEngine::new(limits)?.with_fetcher(fetcher));
    let candidate = match (version, component) {
        (Some(v), _) => {
            let stored = store
                .plugin_version(&tenant, name, v)
                .await?
                .with_context(|| format!("plugin {name} has no version {v}"))?;
            stored::stage(&store, &engine, &tenant, stored).await?
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            let compiled = engine.compile(&bytes)?;
            Stage { version: PluginVersion { name: name.to_string(), version: 0, digest }, compiled }
        }
        (None, None) => bail!("give --version or --component"),
    };
    // The CLI is the operator at the database: no request deadline of its own.
    let ran =
        dryrun::dry_run(&store, &engine, &tenant, candidate, last, std::time::Duration::from_secs(86_400)).await?;
    let changed = ran.results.iter().filter(|r| r["changed"] == true).count();
    println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "results": ran.results }))?);
    eprintln!("{} events, {changed} changed", ran.results.len());
    store.close().await;
    Ok(())
}

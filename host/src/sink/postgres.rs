//! Tenants' PostgreSQL sink databases, reached only where the operator allows: the URL is
//! parsed into connect options by hand — host, port, explicit user and password, database, and
//! of the query only `sslmode` — so no `?host=`, `?hostaddr=`, unix socket or `options`
//! parameter, and nothing filled in from the service's environment or `~/.pgpass`. At every
//! connect the host is resolved and checked by the outbound guard (the tenant's own
//! `outbound_allow` with the operator's), and the connection goes to the checked address.
//!
//! Errors shown to the tenant name the rule that refused, never the server's own text.

use std::net::{IpAddr, SocketAddr};

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::SinkError;
use crate::deliver::{OutboundPolicy, guard};

/// Variables the PostgreSQL driver would read from the service's environment for fields these
/// options cannot reset: while one is set, tenants' sinks are refused.
const LEAKY_ENV: [&str; 4] = ["PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGOPTIONS"];

/// A tenant's PostgreSQL sink as its URL names it.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: String,
    pub database: String,
    ssl: PgSslMode,
}

fn invalid(msg: impl Into<String>) -> SinkError {
    SinkError::Invalid(format!("database_url: {}", msg.into()))
}

/// A URL's userinfo or path, percent-decoded (UTF-8 only).
fn decoded(s: &str) -> Result<String, SinkError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|d| d.into_owned())
        .map_err(|_| invalid("bad percent-encoding"))
}

impl PgTarget {
    /// Parse `postgres://user:password@host[:port]/database[?sslmode=…]`.
    pub fn parse(url: &str) -> Result<PgTarget, SinkError> {
        let u = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(u.scheme(), "postgres" | "postgresql") {
            return Err(invalid("the scheme must be postgres://"));
        }
        let host = match u.host() {
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(url::Host::Domain(d))
                if !d.is_empty() && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') =>
            {
                d.to_ascii_lowercase()
            }
            Some(_) => return Err(invalid("the host must be a name or an address (no socket paths)")),
            None => return Err(invalid("a host is required (no unix sockets)")),
        };
        let mut ssl = PgSslMode::Prefer;
        for (key, value) in u.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("sslmode", "disable") => ssl = PgSslMode::Disable,
                ("sslmode", "prefer") => ssl = PgSslMode::Prefer,
                ("sslmode", "require") => ssl = PgSslMode::Require,
                ("sslmode", other) => {
                    return Err(invalid(format!(
                        "sslmode {other:?} is not supported (disable, prefer or require: the connection goes to the checked address, not the name)"
                    )));
                }
                (other, _) => return Err(invalid(format!("parameter {other:?} is not allowed (only sslmode)"))),
            }
        }
        let user = decoded(u.username())?;
        let password = decoded(u.password().unwrap_or_default())?;
        if user.is_empty() || password.is_empty() {
            return Err(invalid("a user and a password are required in the URL"));
        }
        let database = decoded(u.path().trim_start_matches('/'))?;
        if database.is_empty() || database.contains('/') {
            return Err(invalid("a database name is required (postgres://user:password@host/database)"));
        }
        Ok(PgTarget { host, port: u.port().unwrap_or(5432), user, password, database, ssl })
    }

    /// Resolve the host and keep the first address the outbound guard permits; refused with
    /// the rule otherwise.
    pub async fn checked_address(&self, policy: &OutboundPolicy) -> Result<SocketAddr, SinkError> {
        if let Some(var) = LEAKY_ENV.iter().find(|v| std::env::var_os(v).is_some()) {
            tracing::error!(
                variable = var,
                "PostgreSQL sinks refused: unset {var} in the service's environment (it would apply to tenants' connections)"
            );
            return Err(SinkError::Refused("PostgreSQL sinks are unavailable on this server".into()));
        }
        let found: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|_| SinkError::Refused(format!("{} does not resolve", self.host)))?
                .collect(),
        };
        found.into_iter().find(|a| guard::permitted(a.ip(), &policy.allow)).ok_or_else(|| {
            SinkError::Refused(format!(
                "{} resolves only to internal addresses, which this tenant may not reach (outbound_allow)",
                self.host
            ))
        })
    }

    /// Connect options to `addr` (checked) with only the URL's settings.
    pub fn options(&self, addr: SocketAddr) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(&addr.ip().to_string())
            .port(addr.port())
            .username(&self.user)
            .password(&self.password)
            .database(&self.database)
            .ssl_mode(self.ssl)
            .application_name("hookhost-sink")
    }
}

/// What the tenant is told of a failed connection or statement: our words, never the server's.
pub fn tenant_error(e: &sqlx::Error) -> SinkError {
    let msg = match e {
        sqlx::Error::Io(_) => "could not connect (connection refused or reset)",
        sqlx::Error::Tls(_) => "the TLS handshake failed",
        sqlx::Error::PoolTimedOut => "timed out connecting",
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01" | "28000") => "authentication failed",
            Some("3D000") => "the database does not exist",
            Some(c) if c.starts_with("42") => "the statement was refused (table or permissions)",
            _ => "the database refused the request",
        },
        _ => "the database could not be reached",
    };
    SinkError::Refused(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_urls_own_settings_are_taken() {
        let t = PgTarget::parse("postgres://crm:s%40cret@db.example.com:6543/calls?sslmode=require").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.user.as_str(), t.database.as_str()),
            ("db.example.com", 6543, "crm", "calls")
        );
        assert_eq!(t.password, "s@cret");
        for bad in [
            "postgres://u:p@db.example.com/x?host=/var/run/postgresql",
            "postgres://u:p@db.example.com/x?hostaddr=127.0.0.1",
            "postgres://u:p@db.example.com/x?options=-c%20search_path%3Devil",
            "postgres://u:p@db.example.com/x?sslmode=verify-full",
            "postgres:///x?host=/var/run/postgresql",
            "postgres://u:p@%2Fvar%2Frun%2Fpostgresql/x",
            "postgres://db.example.com/x",
            "postgres://u@db.example.com/x",
            "postgres://u:p@db.example.com/",
            "mysql://u:p@db.example.com/x",
        ] {
            assert!(PgTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn names_and_addresses_are_checked_by_the_outbound_guard() {
        let strict = OutboundPolicy::default();
        let local = OutboundPolicy { allow: crate::config::parse_cidrs("127.0.0.0/8").unwrap(), allow_http: false };
        let by_name = PgTarget::parse("postgres://u:p@localhost:5432/test").unwrap();
        let err = by_name.checked_address(&strict).await.unwrap_err();
        assert!(err.to_string().contains("internal addresses"), "{err}");
        let by_ip = PgTarget::parse("postgres://u:p@127.0.0.1:5432/test").unwrap();
        assert!(by_ip.checked_address(&strict).await.is_err());
        assert_eq!(by_ip.checked_address(&local).await.unwrap().to_string(), "127.0.0.1:5432");
    }
}

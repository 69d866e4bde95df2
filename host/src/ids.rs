//! Identifier types, one per kind of row a caller names: tenants, endpoints, sinks (`ten_…`,
//! `ep_…`, `snk_…` strings) and deliveries (numbers). A function that takes an endpoint id
//! cannot be handed a sink's. Ids are minted here ([`new_id`]); an id read back from the store
//! is trusted (`from_stored`), one from a request is only a name to look up (`named`), and
//! [`TenantId::parse`] checks one typed by hand. Nothing else here.

use std::fmt;

/// A random identifier with a type prefix, e.g. `ten_5f1c…` (96 random bits, hex).
pub fn new_id(prefix: &str) -> String {
    let bytes: [u8; 12] = rand::random();
    format!("{prefix}_{}", hex::encode(bytes))
}

/// An event's id, `evt_` and 32 hex digits: the minting time in unix milliseconds (48 bits, big
/// endian) then 80 random bits. Ids minted later sort after earlier ones, so the indexes keyed
/// by event id take each new row at their end instead of at a random page: inserting costs the
/// same with a million stored events as with none. The time never goes back within a process
/// (a clock stepped back keeps the last time until it catches up).
pub fn new_event_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let ms = LAST_MS.fetch_max(now, Ordering::Relaxed).max(now);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&rand::random::<[u8; 10]>());
    format!("evt_{}", hex::encode(bytes))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident = $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh id.
            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            /// An id read back from the store (trusted).
            pub fn from_stored(s: String) -> Self {
                Self(s)
            }

            /// An id a request names, to look up (it may name nothing).
            pub fn named(s: &str) -> Self {
                Self(s.to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                <String as utoipa::PartialSchema>::schema()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

string_id! {
    /// A tenant's id, `ten_…`.
    TenantId = "ten"
}

string_id! {
    /// A delivery endpoint's id, `ep_…`.
    EndpointId = "ep"
}

string_id! {
    /// A CRM sink's id, `snk_…`.
    SinkId = "snk"
}

impl TenantId {
    /// An id typed by hand (the CLI, a local event file): 1 to 64 of `A-Z a-z 0-9 _ -`.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        ok.then(|| Self(s.to_string()))
    }
}

/// A delivery's id (its job's row id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct DeliveryId(pub i64);

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_hand_typed_tenants_are_checked() {
        assert!(EndpointId::generate().as_str().starts_with("ep_"));
        assert!(SinkId::generate().as_str().starts_with("snk_"));
        assert_eq!(TenantId::generate().as_str().len(), "ten_".len() + 24);
        assert!(TenantId::parse("ten_local").is_some());
        assert!(TenantId::parse("").is_none());
        assert!(TenantId::parse("ten x").is_none());
        assert!(TenantId::parse(&"a".repeat(65)).is_none());
        assert_eq!(serde_json::to_value(DeliveryId(7)).unwrap(), 7);
    }

    #[test]
    fn event_ids_sort_by_minting_time_and_stay_unique() {
        let ids: Vec<String> = (0..1000).map(|_| new_event_id()).collect();
        assert!(ids.iter().all(|id| id.len() == "evt_".len() + 32 && id.starts_with("evt_")));
        let mut sorted = ids.clone();
        sorted.sort();
        // Within one millisecond the random part orders them; across milliseconds the time does.
        let prefix = |id: &str| id[..4 + 12].to_string();
        assert!(ids.windows(2).all(|w| prefix(&w[0]) <= prefix(&w[1])));
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
    }
}

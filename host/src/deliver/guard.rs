//! The outbound address guard: deliveries never reach loopback, private, link-local (cloud
//! metadata), CGNAT, multicast or unspecified addresses unless the operator allow-list
//! (`HOOKHOST_OUTBOUND_ALLOW`) covers them. Checked on IP literals before sending and on every
//! name resolution (so DNS cannot point a public name at an internal address).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is in a range deliveries must not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || is_nat64_internal(v6)
        }
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240 // reserved
}

fn is_nat64_internal(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return is_internal_v4(v4);
    }
    false
}

/// Whether a delivery may go to `ip` under the allow-list.
pub fn permitted(ip: IpAddr, allow: &[IpNet]) -> bool {
    !is_internal(ip) || allow.iter().any(|net| net.contains(&ip))
}

/// A resolver that drops internal addresses the allow-list does not cover.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow: Arc<Vec<IpNet>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = found.into_iter().filter(|a| permitted(a.ip(), &allow)).collect();
            if ok.is_empty() {
                let msg = format!("{host} resolves only to internal addresses (not in HOOKHOST_OUTBOUND_ALLOW)");
                return Err(Box::new(std::io::Error::new(std::io::ErrorKind::PermissionDenied, msg)) as _);
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

/// Builds a client whose resolver lets through `allow` (and nothing else internal).
type BuildClient = dyn Fn(Arc<Vec<IpNet>>) -> reqwest::Result<reqwest::Client> + Send + Sync;

/// HTTP clients behind the guard, one per distinct allow-list: the operator's, and the
/// operator's widened by a tenant's own `outbound_allow` (most tenants share the first).
pub struct GuardedClients {
    build: Box<BuildClient>,
    clients: Mutex<HashMap<Vec<IpNet>, reqwest::Client>>,
}

/// Distinct allow-lists kept; past that the map starts over.
const CLIENTS_MAX: usize = 256;

impl std::fmt::Debug for GuardedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuardedClients(..)")
    }
}

impl GuardedClients {
    /// `build` makes a client with the given resolver; called once per allow-list.
    pub fn new(build: impl Fn(GuardedResolver) -> reqwest::Result<reqwest::Client> + Send + Sync + 'static) -> Self {
        Self { build: Box::new(move |allow| build(GuardedResolver { allow })), clients: Mutex::new(HashMap::new()) }
    }

    /// The client for `allow`.
    pub fn get(&self, allow: &[IpNet]) -> reqwest::Result<reqwest::Client> {
        if let Some(c) = self.clients.lock().expect("clients lock").get(allow) {
            return Ok(c.clone());
        }
        let client = (self.build)(Arc::new(allow.to_vec()))?;
        let mut clients = self.clients.lock().expect("clients lock");
        if clients.len() >= CLIENTS_MAX {
            clients.clear();
        }
        clients.insert(allow.to_vec(), client.clone());
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal(ip(s)), "{s}");
        }
        for s in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_internal(ip(s)), "{s}");
        }
    }

    #[test]
    fn allow_list_lets_through() {
        let allow = crate::config::parse_cidrs("127.0.0.0/8").unwrap();
        assert!(permitted(ip("127.0.0.1"), &allow));
        assert!(!permitted(ip("10.0.0.1"), &allow));
        assert!(permitted(ip("8.8.8.8"), &[]));
    }
}

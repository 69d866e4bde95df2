//! Hostile on purpose: tries to read what an earlier event left in linear memory. Each event
//! may `fill` `mb` MiB of fresh heap with an 8-byte word (`fill`, hex) and may `probe`: count the
//! 8-byte-aligned words of its whole linear memory equal to the word `probe` names (hex, XORed
//! with 0x5a in every byte so the event's own payload never holds it). Delivers `{"found": n}`.
//! A fresh instance per event must find nothing an earlier event — another tenant's — wrote,
//! whatever the pool keeps mapped between instances.
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct MemorySnoop;

fn word(hex: &str, mask: u64) -> u64 {
    u64::from_str_radix(hex, 16).unwrap_or(0) ^ mask
}

/// The size of linear memory 0 (natively, where there is none to scan: 0).
fn linear_memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 65536;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

impl Plugin for MemorySnoop {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let p = event.payload_json()?;
        let mb = p["mb"].as_u64().unwrap_or(0) as usize;
        let mut heap: Vec<u64> = vec![0; mb << 17];
        if let Some(fill) = p["fill"].as_str() {
            let w = word(fill, 0);
            heap.iter_mut().for_each(|x| *x = w);
        }
        std::hint::black_box(&heap);
        let mut found = 0u64;
        if let Some(probe) = p["probe"].as_str() {
            let masked = word(probe, 0);
            let bytes = linear_memory_bytes();
            // Start past the first word: address 0 is not a pointer to read through.
            for addr in (8..bytes).step_by(8) {
                // SAFETY: every address below memory_size is in bounds for a wasm load; the
                // value is only compared.
                let w = unsafe { core::ptr::read_volatile(addr as *const u64) };
                if w ^ 0x5a5a_5a5a_5a5a_5a5a == masked {
                    found += 1;
                }
            }
        }
        Ok(vec![hookhost_sdk::deliver(&event.event_type, &hookhost_sdk::serde_json::json!({ "found": found }))])
    }
}

hookhost_sdk::export!(MemorySnoop);

//! Hostile on purpose: allocates until the sandbox's memory cap stops it.
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct MemoryHog;

impl Plugin for MemoryHog {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // 1 MiB at a time, touched so it is really committed.
            hoard.push(vec![event.payload.len() as u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

hookhost_sdk::export!(MemoryHog);

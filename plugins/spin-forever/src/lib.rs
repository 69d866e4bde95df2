//! Hostile on purpose: never returns. The host must stop it (fuel or deadline).
use hookhost_sdk::{Action, Event, Plugin, PluginError};

struct SpinForever;

impl Plugin for SpinForever {
    fn handle(event: Event) -> Result<Vec<Action>, PluginError> {
        let mut x: u64 = event.occurred_at | 1;
        // An LCG with an odd increment never reaches 0 from an odd seed in practice; the exit
        // exists only so the compiler cannot treat the loop as diverging.
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
            if x == 0 {
                return Ok(Vec::new());
            }
        }
    }
}

hookhost_sdk::export!(SpinForever);

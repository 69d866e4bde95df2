//! The states rows move through, as types: an event's processing status, a job's status, a
//! delivery's status as the API shows it, an endpoint's signing style, a receipt's verdict and a
//! plugin version's compile state. Each has one spelling, used in SQL and JSON alike.
//! No SQL here.

use std::fmt;

/// Generates `as_str`, `parse`, `Display`, `Serialize` and the OpenAPI schema for a state enum from one table of
/// spellings, so SQL, JSON and logs cannot disagree.
macro_rules! states {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every state, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The state spelled `s`, if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

states! {
    /// Where a canonical event stands in the router stage.
    EventStatus {
        /// Waiting for (or between attempts of) its plugin job.
        Pending = "pending",
        /// Routed: its deliveries and sink writes are enqueued.
        Processed = "processed",
        /// A plugin dropped it (or returned no actions).
        Dropped = "dropped",
        /// Its plugin failed, its output was unusable or over the fan-out budget.
        Failed = "failed",
    }
}

// Written out: the derive cannot mark a variant made by the macro.
#[allow(clippy::derivable_impls)]
impl Default for EventStatus {
    fn default() -> Self {
        EventStatus::Pending
    }
}

states! {
    /// A job in the outbox.
    JobStatus {
        Pending = "pending",
        /// Leased by a worker until its lease runs out.
        Running = "running",
        Succeeded = "succeeded",
        /// Failed for good (a permanent error, or a plugin job's last attempt).
        Failed = "failed",
        /// A delivery or sink write whose retries ran out: the dead letter.
        Dead = "dead",
    }
}

states! {
    /// A delivery as the API shows it: a running job is `pending`, a dead letter `failed`
    /// (with `dead_letter: true`).
    DeliveryStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

impl DeliveryStatus {
    /// The job statuses a delivery in this state may have.
    pub fn job_statuses(self) -> &'static [JobStatus] {
        match self {
            DeliveryStatus::Pending => &[JobStatus::Pending, JobStatus::Running],
            DeliveryStatus::Succeeded => &[JobStatus::Succeeded],
            DeliveryStatus::Failed => &[JobStatus::Failed, JobStatus::Dead],
        }
    }
}

impl From<JobStatus> for DeliveryStatus {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Pending | JobStatus::Running => DeliveryStatus::Pending,
            JobStatus::Succeeded => DeliveryStatus::Succeeded,
            JobStatus::Failed | JobStatus::Dead => DeliveryStatus::Failed,
        }
    }
}

states! {
    /// How deliveries to an endpoint are signed.
    SigningStyle {
        /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,…`.
        Standard = "standard",
        /// `X-Hookhost-Event-Id` and `X-Hookhost-Signature: t=…,v1=…`.
        Hookhost = "hookhost",
    }
}

states! {
    /// What became of a provider request, as its receipt keeps it.
    Verdict {
        /// Verified and new: its events were stored.
        Accepted = "accepted",
        /// Verified, already applied: nothing new was stored.
        Duplicate = "duplicate",
        /// Not verified or not understood: kept as evidence only.
        Rejected = "rejected",
        /// Verified, but it says nothing hookhost turns into an event (a message `queued`, …).
        Ignored = "ignored",
    }
}

states! {
    /// A plugin version's compilation.
    PluginState {
        /// Stored at upload; compiling (or waiting for the compile budget).
        Compiling = "compiling",
        /// Compiled, linked and instantiated within the tenant's limits: may be activated.
        Ready = "ready",
        /// Not a usable plugin component; `reason` says why. Never runs.
        Invalid = "invalid",
    }
}

impl Verdict {
    /// `Duplicate` when the request had already been applied, else `Accepted`.
    pub fn of(duplicate: bool) -> Self {
        if duplicate { Verdict::Duplicate } else { Verdict::Accepted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_itself_and_nothing_else_parses() {
        for s in EventStatus::ALL {
            assert_eq!(EventStatus::parse(s.as_str()), Some(*s));
        }
        for s in Verdict::ALL {
            assert_eq!(Verdict::parse(s.as_str()), Some(*s));
        }
        for s in PluginState::ALL {
            assert_eq!(PluginState::parse(s.as_str()), Some(*s));
        }
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(*s));
            assert!(DeliveryStatus::from(*s).job_statuses().contains(s));
        }
        assert_eq!(EventStatus::parse("Processed"), None);
        assert_eq!(serde_json::to_value(DeliveryStatus::Failed).unwrap(), "failed");
    }
}

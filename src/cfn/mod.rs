//! CloudFormation: the stack as found ([`stack`]), change sets ([`change_set`]), what a
//! change set means ([`classify`], pure functions), this operation's events ([`events`])
//! and waiting for the stack to settle ([`wait`]).

pub mod change_set;
pub mod classify;
pub mod events;
pub mod guard;
pub mod stack;
pub mod wait;

use std::time::Duration;

/// How often to poll; tests shorten it.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Poll {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5),
        }
    }
}

impl Poll {
    pub fn next(&self, current: Duration) -> Duration {
        (current * 3 / 2).min(self.max)
    }

    /// Milliseconds, for tests against mocks.
    pub fn fast() -> Self {
        Self {
            first: Duration::from_millis(1),
            max: Duration::from_millis(2),
        }
    }
}

/// A token for one stack operation: CloudFormation stamps it on every event of that
/// operation, so its events can be told from another pipeline's.
pub fn request_token() -> String {
    format!("openai-proxy-{}", uuid::Uuid::new_v4())
}

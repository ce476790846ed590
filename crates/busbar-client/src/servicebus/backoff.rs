//! The processors' pause between attempts to get a receiver back after a failure: the
//! client's retry policy (its mode, first and longest delay, and jitter, so that processors
//! cut off by the same broker restart do not all come back in the same instant), but never
//! giving up: a processor keeps trying for as long as it runs.

use std::time::Duration;

use super::error::{RetryOptions, jittered};

/// Consecutive failures, and the pause the next one earns.
#[derive(Debug)]
pub(crate) struct Backoff {
    retry: RetryOptions,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(retry: RetryOptions) -> Self {
        Self { retry, failures: 0 }
    }

    /// Something worked: the next failure starts again from the first delay.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// The pause after one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        jittered(self.retry.delay_for(self.failures), self.retry.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_longest_and_start_over_after_a_success() {
        let retry = RetryOptions {
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            ..RetryOptions::default()
        };
        let mut backoff = Backoff::new(retry);
        let floors = [100, 200, 400, 400, 400];
        for floor in floors {
            let delay = backoff.next_delay();
            let floor = Duration::from_millis(floor);
            assert!(
                (floor..=floor + floor / 5).contains(&delay),
                "{delay:?} outside {floor:?} + a fifth"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() < Duration::from_millis(200));
    }
}

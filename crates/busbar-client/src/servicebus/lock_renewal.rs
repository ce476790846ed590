//! Keeping a lock (a message's or a session's) alive while the application works under it:
//! renewed shortly before it runs out, for at most a chosen span from when the lock was
//! taken. Used by both processors.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinHandle;

use super::error::ServiceBusError;

/// The margin kept before a lock expires, at most: renewing 10 s early survives a slow
/// round trip, and a short lock is renewed half-way through instead.
const MAX_MARGIN: Duration = Duration::from_secs(10);
/// Never renew more often than this, even when the lock has (nearly) run out.
const MIN_WAIT: Duration = Duration::from_millis(100);

/// How long to wait before renewing a lock held until `locked_until`.
pub(crate) fn renew_delay(locked_until: SystemTime, now: SystemTime) -> Duration {
    let remaining = locked_until.duration_since(now).unwrap_or_default();
    let margin = (remaining / 2).min(MAX_MARGIN);
    (remaining - margin).max(MIN_WAIT)
}

/// A running renewal; dropping it stops renewing (the lock then simply runs its course).
#[derive(Debug)]
pub(crate) struct LockRenewal {
    task: JoinHandle<()>,
}

impl Drop for LockRenewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Renews a lock held until `locked_until` with `renew` (which answers the new expiry), for
/// up to `max_duration` from now, reporting each failure to `on_error`, as a task of its own.
pub(crate) fn spawn_renewal<R, RF, E, EF>(
    locked_until: SystemTime,
    max_duration: Duration,
    renew: R,
    on_error: E,
) -> LockRenewal
where
    R: FnMut() -> RF + Send + 'static,
    RF: Future<Output = Result<SystemTime, ServiceBusError>> + Send + 'static,
    E: FnMut(ServiceBusError) -> EF + Send + 'static,
    EF: Future<Output = ()> + Send + 'static,
{
    let task = tokio::spawn(keep_renewed(locked_until, max_duration, renew, on_error));
    LockRenewal { task }
}

/// Renews a lock held until `locked_until` with `renew` (which answers the new expiry), for
/// up to `max_duration` from now, reporting each failure to `on_error`. Ends at the first
/// failure that a retry cannot mend (the lock is lost, the entity is gone), when the lock
/// has run out, or when the lock in hand outlasts the span; a transient failure is retried
/// before the lock expires. Polled alongside the work it protects, it costs nothing but a
/// timer until the first renewal is due.
pub(crate) async fn keep_renewed<R, RF, E, EF>(
    locked_until: SystemTime,
    max_duration: Duration,
    mut renew: R,
    mut on_error: E,
) where
    R: FnMut() -> RF,
    RF: Future<Output = Result<SystemTime, ServiceBusError>>,
    E: FnMut(ServiceBusError) -> EF,
    EF: Future<Output = ()>,
{
    let deadline = Instant::now() + max_duration;
    let mut locked_until = locked_until;
    loop {
        let now = SystemTime::now();
        if locked_until <= now {
            return;
        }
        let wake = Instant::now() + renew_delay(locked_until, now);
        if wake >= deadline {
            return;
        }
        tokio::time::sleep_until(wake.into()).await;
        match renew().await {
            Ok(until) => locked_until = until,
            Err(error) => {
                let retry = error.is_transient();
                on_error(error).await;
                if !retry {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_lock_is_renewed_ten_seconds_before_it_expires() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let delay = renew_delay(now + Duration::from_secs(60), now);
        assert_eq!(delay, Duration::from_secs(50));
    }

    #[test]
    fn a_short_lock_is_renewed_half_way() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let delay = renew_delay(now + Duration::from_secs(4), now);
        assert_eq!(delay, Duration::from_secs(2));
    }

    #[test]
    fn an_expired_lock_waits_the_minimum() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(renew_delay(now - Duration::from_secs(1), now), MIN_WAIT);
    }
}

//! The commit future: a tiny shared-state notifier, independent of any async runtime.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::StoreError;

/// Tracks how far the log is durable and who waits for more.
///
/// Appends are numbered by a ticket in log order; the writer publishes the highest ticket
/// made durable. Several commits may share a ticket (an empty append waits for the batch
/// before it), so waiters are keyed by `(ticket, unique id)`.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    inner: Mutex<NotifyState>,
    next_id: AtomicU64,
}

#[derive(Debug, Default)]
struct NotifyState {
    durable: u64,
    failure: Option<StoreError>,
    waiters: BTreeMap<(u64, u64), Waker>,
}

impl Notifier {
    pub(crate) fn new(durable: u64) -> Self {
        Notifier {
            inner: Mutex::new(NotifyState {
                durable,
                ..NotifyState::default()
            }),
            next_id: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NotifyState> {
        // A panic while holding this lock cannot leave the counters inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything up to and including `ticket` is durable.
    pub(crate) fn complete(&self, ticket: u64) {
        let ready = {
            let mut st = self.lock();
            st.durable = st.durable.max(ticket);
            let rest = st.waiters.split_off(&(ticket.saturating_add(1), 0));
            std::mem::replace(&mut st.waiters, rest)
        };
        for (_, w) in ready {
            w.wake();
        }
    }

    /// Nothing more will become durable; every unresolved commit fails with `err`.
    pub(crate) fn fail(&self, err: StoreError) {
        let all = {
            let mut st = self.lock();
            if st.failure.is_none() {
                st.failure = Some(err);
            }
            std::mem::take(&mut st.waiters)
        };
        for (_, w) in all {
            w.wake();
        }
    }

    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiters.len()
    }
}

/// Resolves once the records of its `append` call, and of every earlier call, are
/// durable (written and, under [`crate::Durability::Sync`], fdatasync'ed).
#[derive(Debug)]
#[must_use = "a commit does nothing unless awaited; dropping it does not cancel the write"]
pub struct LogCommit {
    notifier: Arc<Notifier>,
    ticket: u64,
    id: u64,
    registered: bool,
}

impl LogCommit {
    pub(crate) fn new(notifier: Arc<Notifier>, ticket: u64) -> Self {
        let id = notifier.next_id.fetch_add(1, Ordering::Relaxed);
        LogCommit {
            notifier,
            ticket,
            id,
            registered: false,
        }
    }
}

impl Future for LogCommit {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let key = (self.ticket, self.id);
        let mut st = self.notifier.lock();
        let done = if self.ticket <= st.durable {
            Some(Ok(()))
        } else {
            st.failure.clone().map(Err)
        };
        if let Some(result) = done {
            if self.registered {
                st.waiters.remove(&key);
            }
            drop(st);
            self.registered = false;
            return Poll::Ready(result);
        }
        match st.waiters.get_mut(&key) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => w.clone_from(cx.waker()),
            None => {
                st.waiters.insert(key, cx.waker().clone());
            }
        }
        drop(st);
        self.registered = true;
        Poll::Pending
    }
}

impl Drop for LogCommit {
    fn drop(&mut self) {
        if self.registered {
            self.notifier.lock().waiters.remove(&(self.ticket, self.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(c: &mut LogCommit, w: &Waker) -> Poll<Result<(), StoreError>> {
        Pin::new(c).poll(&mut Context::from_waker(w))
    }

    #[test]
    fn resolves_in_ticket_order_and_cleans_up() {
        let n = Arc::new(Notifier::new(0));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut a = LogCommit::new(n.clone(), 1);
        let mut b = LogCommit::new(n.clone(), 2);
        let mut b2 = LogCommit::new(n.clone(), 2);
        assert!(poll(&mut a, &waker).is_pending());
        assert!(
            poll(&mut a, &waker).is_pending(),
            "re-poll does not duplicate"
        );
        assert!(poll(&mut b, &waker).is_pending());
        assert!(poll(&mut b2, &waker).is_pending());
        assert_eq!(n.waiting(), 3);
        n.complete(1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(poll(&mut a, &waker), Poll::Ready(Ok(()))));
        assert!(poll(&mut b, &waker).is_pending());
        drop(b2);
        assert_eq!(n.waiting(), 1, "a dropped commit unregisters");
        n.fail(StoreError::Poisoned("disk".into()));
        assert!(matches!(
            poll(&mut b, &waker),
            Poll::Ready(Err(StoreError::Poisoned(_)))
        ));
        let mut old = LogCommit::new(n.clone(), 1);
        assert!(
            matches!(poll(&mut old, &waker), Poll::Ready(Ok(()))),
            "already durable work stays acknowledged after a failure"
        );
        assert_eq!(n.waiting(), 0);
    }
}

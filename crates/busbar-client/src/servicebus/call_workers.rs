//! The tasks a pump runs its handler calls on (a shift of calls each, see `message_pump`):
//! kept between shifts, because a task per call costs a spawn (an allocation, and copies of
//! the call's large future) for every message. Each call still has a task of its own while
//! it runs, so calls run in parallel on a multi-threaded runtime and a handler that blocks
//! holds up only its own task, as before.
//!
//! A task that finished its shift waits, idle, for the next; a shift finding no idle task
//! starts a new one. There are thus at most as many tasks as calls ever ran at once (handler
//! calls plus the settlements they left running); they end with the [`CallWorkers`].

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::mpsc;

/// One piece of work for a worker task.
pub(crate) trait Call: Send + 'static {
    fn run(self) -> impl Future<Output = ()> + Send;
}

/// Runs calls on reused tasks; dropping it ends the idle tasks, and the busy ones once
/// their calls are over.
pub(crate) struct CallWorkers<C: Call> {
    idle: Arc<Mutex<Vec<Worker<C>>>>,
}

/// How to hand an idle task its next call.
struct Worker<C>(mpsc::UnboundedSender<Assignment<C>>);

/// A call, and the handle the task puts back among the idle once the call is over.
struct Assignment<C> {
    call: C,
    worker: Worker<C>,
}

impl<C: Call> CallWorkers<C> {
    pub(crate) fn new() -> Self {
        Self {
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Starts `call` on an idle task, or on a new one.
    pub(crate) fn run(&self, call: C) {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let call = match idle {
            Some(worker) => {
                let sender = worker.0.clone();
                match sender.send(Assignment { call, worker }) {
                    Ok(()) => return,
                    // The task is gone (it panicked outside the call's own guard).
                    Err(mpsc::error::SendError(assignment)) => assignment.call,
                }
            }
            None => call,
        };
        tokio::spawn(serve(call, Arc::downgrade(&self.idle)));
    }
}

/// A worker task: runs its first call, then each one it is handed while idle.
async fn serve<C: Call>(first: C, idle: Weak<Mutex<Vec<Worker<C>>>>) {
    let (sender, mut assignments) = mpsc::unbounded_channel();
    let mut call = first;
    let mut worker = Worker(sender);
    loop {
        call.run().await;
        let Some(idle) = idle.upgrade() else {
            return;
        };
        idle.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(worker);
        drop(idle);
        // `None` once the workers are dropped, with this task's handle among the idle.
        let Some(next) = assignments.recv().await else {
            return;
        };
        call = next.call;
        worker = next.worker;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Notify;

    use super::*;

    /// Counts how many calls run at once, holding each until released.
    struct Held {
        running: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
        release: Arc<Notify>,
        done: mpsc::UnboundedSender<()>,
    }

    impl Call for Held {
        async fn run(self) {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            self.release.notified().await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            let _ = self.done.send(());
        }
    }

    #[tokio::test]
    async fn calls_run_side_by_side_and_idle_tasks_are_reused() {
        let workers = CallWorkers::new();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let (done, mut finished) = mpsc::unbounded_channel();
        let call = || Held {
            running: running.clone(),
            peak: peak.clone(),
            release: release.clone(),
            done: done.clone(),
        };
        for _ in 0..3 {
            workers.run(call());
        }
        while running.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        release.notify_waiters();
        for _ in 0..3 {
            finished.recv().await.expect("a call finished");
        }
        // The three tasks are idle now; three more calls take them, not new tasks.
        while workers.idle.lock().expect("idle list").len() < 3 {
            tokio::task::yield_now().await;
        }
        for _ in 0..3 {
            workers.run(call());
        }
        assert!(workers.idle.lock().expect("idle list").is_empty());
        while running.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        release.notify_waiters();
        for _ in 0..3 {
            finished.recv().await.expect("a call finished");
        }
    }
}

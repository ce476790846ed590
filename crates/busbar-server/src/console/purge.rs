//! Purge jobs: everything of an entity (or of its dead-letter queue) removed in batches
//! in the background, each batch one append awaited before the next, with progress for
//! the page to poll. It removes what was there when it started (up to the stream's last
//! sequence number then); locked messages are left to their holders.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use busbar_core::SubQueueKind;
use busbar_http::console_api::{ConsoleError, JobStarted, JobStatus, PurgeRequest};
use busbar_store::Seq;

use super::{console_failure, queue_entity};
use crate::ServedBroker;
use crate::rest::{core_failure, durable};

/// Messages removed per append.
const PURGE_BATCH: usize = 4096;
/// Finished jobs remembered for the page to read, oldest forgotten first.
const JOBS_KEPT: usize = 64;

#[derive(Debug)]
struct Job {
    entity: String,
    total: u64,
    removed: AtomicU64,
    done: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Job {
    fn status(&self) -> JobStatus {
        JobStatus {
            done: self.done.load(Ordering::Acquire),
            removed: self.removed.load(Ordering::Relaxed),
            total: self.total,
            error: self
                .error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            entity: self.entity.clone(),
        }
    }

    fn finish(&self, error: Option<String>) {
        *self
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = error;
        self.done.store(true, Ordering::Release);
    }
}

/// The purge jobs started, by id, at most [`JOBS_KEPT`].
#[derive(Debug, Default)]
pub(super) struct Jobs {
    jobs: Mutex<Kept>,
}

/// The jobs by id, and their ids oldest first.
type Kept = (HashMap<String, Arc<Job>>, VecDeque<String>);

impl Jobs {
    pub(super) fn start(
        &self,
        broker: Arc<ServedBroker>,
        request: PurgeRequest,
    ) -> Result<JobStarted, ConsoleError> {
        let entity = queue_entity(&broker, &request.entity)?;
        let kind = if request.dead_letter {
            SubQueueKind::DeadLetter
        } else {
            SubQueueKind::Main
        };
        let (total, through) = {
            let state = entity.lock();
            let sub = state.queue.sub(kind);
            (sub.len() as u64, sub.last_seq())
        };
        let job = Arc::new(Job {
            entity: entity.name.clone(),
            total,
            removed: AtomicU64::new(0),
            done: AtomicBool::new(false),
            error: Mutex::new(None),
        });
        let id = uuid::Uuid::new_v4().simple().to_string();
        {
            let mut jobs = self
                .jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (by_id, order) = &mut *jobs;
            while order.len() >= JOBS_KEPT {
                if let Some(oldest) = order.pop_front() {
                    by_id.remove(&oldest);
                }
            }
            by_id.insert(id.clone(), Arc::clone(&job));
            order.push_back(id.clone());
        }
        tokio::spawn(async move {
            let error = run(&broker, &entity, kind, through, &job).await.err();
            if let Some(error) = &error {
                tracing::warn!(entity = %job.entity, %error, "purge stopped");
            }
            job.finish(error.map(|e| e.to_string()));
        });
        Ok(JobStarted { job: id })
    }

    pub(super) fn status(&self, id: &str) -> Option<JobStatus> {
        let jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        jobs.0.get(id).map(|job| job.status())
    }
}

async fn run(
    broker: &ServedBroker,
    entity: &crate::broker::Entity,
    kind: SubQueueKind,
    through: Seq,
    job: &Job,
) -> Result<(), ConsoleError> {
    let mut cursor: Seq = 0;
    loop {
        let mut journal = broker.journal();
        let (removed, next) = entity
            .lock()
            .queue
            .purge_batch(kind, cursor, through, PURGE_BATCH, &mut journal)
            .map_err(|e| console_failure(core_failure(&e)))?;
        durable(broker, journal.into_commit())
            .await
            .map_err(console_failure)?;
        job.removed.fetch_add(removed as u64, Ordering::Relaxed);
        match next {
            Some(next) => cursor = next,
            None => return Ok(()),
        }
        // Others get the entity's lock between batches.
        tokio::task::yield_now().await;
    }
}

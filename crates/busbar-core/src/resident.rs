//! The memory every queue together may spend on keeping message bodies resident.
//!
//! A body kept in memory is delivered without a read from the store; beyond the budget,
//! bodies stay only in the store and are read back when delivered. One budget is shared
//! by all the queues of a broker, so what is resident is bounded the same whether the
//! messages wait in one queue or are spread over ten thousand (a per-queue budget alone
//! let every small queue keep all of its bodies).
//!
//! Each [`crate::SubQueue`] takes from the budget what it keeps and gives it back when the
//! body leaves memory (removed, replaced, or the subqueue dropped).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A budget of resident body bytes, shared by the queues it is handed to; cloning shares
/// it.
#[derive(Debug, Clone)]
pub struct ResidentBudget(Arc<Pool>);

#[derive(Debug)]
struct Pool {
    limit: u64,
    used: AtomicU64,
}

impl ResidentBudget {
    pub fn new(limit_bytes: u64) -> Self {
        ResidentBudget(Arc::new(Pool {
            limit: limit_bytes,
            used: AtomicU64::new(0),
        }))
    }

    /// No bound beyond each queue's own (`QueueConfig::resident_body_budget_bytes`).
    pub fn unbounded() -> Self {
        Self::new(u64::MAX)
    }

    pub fn limit(&self) -> u64 {
        self.0.limit
    }

    /// Body bytes resident now, over all the queues sharing this budget.
    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` if they fit; whoever took them gives them back with [`Self::give_back`].
    pub(crate) fn take(&self, bytes: u64) -> bool {
        // Once the budget is spent, this is a load and no write: sends to a broker whose
        // budget is full do not contend on the counter.
        self.0
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes)
                    .filter(|&total| total <= self.0.limit)
            })
            .is_ok()
    }

    pub(crate) fn give_back(&self, bytes: u64) {
        self.0.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_what_fits_and_clones_share() {
        let budget = ResidentBudget::new(10);
        let shared = budget.clone();
        assert!(budget.take(6));
        assert!(!shared.take(5));
        assert!(shared.take(4));
        assert_eq!(budget.used(), 10);
        budget.give_back(6);
        assert_eq!(shared.used(), 4);
    }
}

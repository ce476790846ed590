//! What an operator does to a queue by hand (the console): remove chosen messages, purge
//! in batches, and send dead-lettered messages back. Each is one append, so it is durable
//! as a whole or not at all; locked messages are left to their holder.

use busbar_store::{MessageState, Seq};

use super::{NewMessage, Plan, Queue, SubQueueKind};
use crate::error::CoreError;
use crate::journal::Journal;
use crate::quota;

impl Queue {
    /// Removes those of `seqs` held in `kind`, unlocked and (if given) in `state`; the
    /// others are left. Returns the seqs removed.
    pub fn remove_unlocked(
        &mut self,
        kind: SubQueueKind,
        seqs: &[Seq],
        state: Option<MessageState>,
        journal: &mut impl Journal,
    ) -> Result<Vec<Seq>, CoreError> {
        let sub = self.sub(kind);
        let mut chosen: Vec<Seq> = seqs
            .iter()
            .copied()
            .filter(|&seq| {
                sub.get(seq).is_some_and(|message| {
                    message.locked_until_ms.is_none()
                        && state.is_none_or(|state| message.meta.state == state)
                })
            })
            .collect();
        chosen.sort_unstable();
        chosen.dedup();
        let mut plan = Plan::default();
        for &seq in &chosen {
            self.plan_remove(kind, seq, &mut plan);
        }
        self.commit(plan, journal)?;
        Ok(chosen)
    }

    /// Removes up to `max` unlocked messages of `kind` from `from_seq` through
    /// `through_seq`, in sequence order (a purge stops at what was there when it began, so
    /// steady sends can't keep it going). Returns how many, and where the next batch starts
    /// (`None`: nothing more).
    pub fn purge_batch(
        &mut self,
        kind: SubQueueKind,
        from_seq: Seq,
        through_seq: Seq,
        max: usize,
        journal: &mut impl Journal,
    ) -> Result<(usize, Option<Seq>), CoreError> {
        let sub = self.sub(kind);
        let mut chosen = Vec::with_capacity(max.min(4096));
        let mut next = None;
        for message in sub.peek(from_seq).take_while(|m| m.seq <= through_seq) {
            if chosen.len() == max {
                next = Some(message.seq);
                break;
            }
            if message.locked_until_ms.is_none() {
                chosen.push(message.seq);
            }
        }
        let mut plan = Plan::default();
        for &seq in &chosen {
            self.plan_remove(kind, seq, &mut plan);
        }
        self.commit(plan, journal)?;
        Ok((chosen.len(), next))
    }

    /// Sends dead-lettered messages back to the main stream as new messages (`copies`:
    /// each dead-letter seq with the message to enqueue for it) and removes them from the
    /// dead-letter queue, in one append: the copy is durable exactly when the removal is,
    /// so a crash leaves neither a loss nor a duplicate. Duplicate detection does not
    /// apply (it is the same message again, on purpose). A seq no longer in the
    /// dead-letter queue, or locked there, is skipped; returns the seqs resubmitted.
    pub fn resubmit_dead_lettered(
        &mut self,
        copies: Vec<(Seq, NewMessage)>,
        now_ms: i64,
        journal: &mut impl Journal,
    ) -> Result<Vec<Seq>, CoreError> {
        let mut plan = Plan::default();
        let mut moved = Vec::with_capacity(copies.len());
        let mut seen = std::collections::HashSet::with_capacity(copies.len());
        let mut next = self.main.last_seq() + 1;
        let mut incoming_bytes = 0;
        for (source, copy) in copies {
            let movable = self
                .dead_letter
                .get(source)
                .is_some_and(|message| message.locked_until_ms.is_none());
            if !movable || !seen.insert(source) {
                continue;
            }
            incoming_bytes += copy.body.len() as u64;
            let (meta, body) = self.new_meta(copy, now_ms);
            plan.insert(self.main.entity(), SubQueueKind::Main, next, meta, body);
            next += 1;
            self.plan_remove(SubQueueKind::DeadLetter, source, &mut plan);
            moved.push(source);
        }
        // What leaves the dead-letter queue frees its room first.
        let leaving: u64 = moved
            .iter()
            .filter_map(|&seq| self.dead_letter.get(seq))
            .map(|message| u64::from(message.body_ref.len))
            .sum();
        quota::ensure_room(
            &self.name,
            self.config.max_size_bytes,
            self.size_bytes().saturating_sub(leaving),
            incoming_bytes,
        )?;
        self.commit(plan, journal)?;
        Ok(moved)
    }
}

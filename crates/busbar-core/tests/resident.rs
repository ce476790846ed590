//! Resident bodies are bounded by one budget shared by every queue: messages spread over
//! many queues keep no more bodies in memory than the same messages in one queue.

mod common;

use busbar_core::{
    ConsumerId, NewMessage, Queue, QueueConfig, ReceiveMode, ResidentBudget, SubQueueKind,
};
use bytes::Bytes;
use common::MemJournal;

const BODY: usize = 1024;
const BUDGET: u64 = 64 * BODY as u64;

fn fill(queue: &mut Queue, count: usize, journal: &mut MemJournal) {
    let messages = (0..count).map(|_| NewMessage {
        body: Bytes::from(vec![7u8; BODY]),
        ..NewMessage::default()
    });
    queue.enqueue(messages, 0, journal).expect("enqueue");
}

fn resident(queues: &[Queue]) -> u64 {
    queues
        .iter()
        .flat_map(|queue| SubQueueKind::ALL.map(|kind| queue.sub(kind).resident_bytes()))
        .sum()
}

/// Queues that would each keep `BUDGET` of bodies on their own.
fn queues(count: u32, budget: &ResidentBudget) -> Vec<Queue> {
    (0..count)
        .map(|i| {
            Queue::new_within(
                format!("q{i}"),
                QueueConfig {
                    resident_body_budget_bytes: BUDGET,
                    ..QueueConfig::default()
                },
                10 + 3 * i,
                11 + 3 * i,
                budget,
            )
        })
        .collect()
}

#[test]
fn many_queues_keep_no_more_resident_than_one() {
    let mut journal = MemJournal::default();

    let one_budget = ResidentBudget::new(BUDGET);
    let mut one = queues(1, &one_budget);
    fill(&mut one[0], 1000, &mut journal);
    let in_one = resident(&one);
    assert_eq!(in_one, BUDGET);

    let spread_budget = ResidentBudget::new(BUDGET);
    let mut spread = queues(100, &spread_budget);
    for queue in &mut spread {
        fill(queue, 10, &mut journal);
    }
    assert_eq!(
        resident(&spread),
        in_one,
        "1000 bodies over 100 queues keep what one queue with them keeps"
    );
    assert_eq!(spread_budget.used(), resident(&spread));

    // What a queue gives up, another may take: the budget is the broker's, not the queue's.
    let first = &mut spread[0];
    for _ in 0..10 {
        first
            .next_for_delivery(
                SubQueueKind::Main,
                ReceiveMode::ReceiveAndDelete,
                ConsumerId(1),
                0,
                &mut journal,
            )
            .expect("receive")
            .expect("a message");
    }
    assert_eq!(spread_budget.used(), BUDGET - 10 * BODY as u64);
    let last = spread.last_mut().expect("queues");
    let before = last.sub(SubQueueKind::Main).resident_bytes();
    fill(last, 10, &mut journal);
    assert_eq!(
        last.sub(SubQueueKind::Main).resident_bytes(),
        before + 10 * BODY as u64
    );
    assert_eq!(spread_budget.used(), BUDGET);

    // A queue dropped (deleted, purged) gives back all it kept.
    spread.truncate(50);
    assert_eq!(spread_budget.used(), resident(&spread));
    drop(spread);
    assert_eq!(spread_budget.used(), 0);
}

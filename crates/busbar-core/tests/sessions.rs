//! Sessions: exclusive session locks, per-session order, next available, lock expiry and
//! renewal, and durable session state.

mod common;

use busbar_core::{
    ConsumerId, CoreError, MessageSessionPick, NewMessage, Queue, QueueConfig, ReceiveMode,
};
use bytes::Bytes;
use common::MemJournal;

const ALICE: ConsumerId = ConsumerId(1);
const BOB: ConsumerId = ConsumerId(2);
const LOCK_MS: i64 = 1_000;

fn queue() -> Queue {
    let config = QueueConfig {
        requires_session: true,
        lock_duration_ms: LOCK_MS,
        ..QueueConfig::default()
    };
    Queue::new("sq", config, 10, 11)
}

fn in_session(session: &str, body: &'static str) -> NewMessage {
    NewMessage {
        body: Bytes::from_static(body.as_bytes()),
        session_id: Some(session.into()),
        ..NewMessage::default()
    }
}

fn bodies(
    queue: &mut Queue,
    session: &str,
    who: ConsumerId,
    now: i64,
    journal: &mut MemJournal,
) -> Vec<Bytes> {
    let mut got = Vec::new();
    while let Some(delivery) = queue
        .next_in_session(session, ReceiveMode::PeekLock, who, now, journal)
        .expect("receive")
    {
        got.push(delivery.body.expect("resident"));
    }
    got
}

#[test]
fn a_session_receiver_gets_only_its_session_in_order_and_holds_it_alone() {
    let mut q = queue();
    let mut journal = MemJournal::default();
    let messages = vec![
        in_session("A", "a1"),
        in_session("B", "b1"),
        in_session("A", "a2"),
        in_session("A", "a3"),
    ];
    q.enqueue(messages, 0, &mut journal).expect("enqueue");
    let grant = q
        .accept_session(MessageSessionPick::Id("A"), ALICE, 0)
        .expect("accept")
        .expect("granted");
    assert_eq!(&*grant.session_id, "A");
    assert_eq!(grant.locked_until_ms, LOCK_MS);
    assert!(matches!(
        q.accept_session(MessageSessionPick::Id("A"), BOB, 10),
        Err(CoreError::SessionCannotBeLocked(id)) if id == "A"
    ));
    assert!(matches!(
        q.next_in_session("A", ReceiveMode::PeekLock, BOB, 10, &mut journal),
        Err(CoreError::SessionLockLost)
    ));
    assert_eq!(
        bodies(&mut q, "A", ALICE, 10, &mut journal),
        vec!["a1", "a2", "a3"]
    );

    q.release_session("A", ALICE);
    assert!(
        q.accept_session(MessageSessionPick::Id("A"), BOB, 20)
            .expect("accept")
            .is_some()
    );
}

#[test]
fn next_available_takes_the_oldest_unlocked_session_or_none() {
    let mut q = queue();
    let mut journal = MemJournal::default();
    q.enqueue(
        vec![in_session("B", "b1"), in_session("A", "a1")],
        0,
        &mut journal,
    )
    .expect("enqueue");
    let first = q
        .accept_session(MessageSessionPick::NextAvailable, ALICE, 0)
        .expect("accept")
        .expect("granted");
    assert_eq!(&*first.session_id, "B", "B holds the oldest message");
    let second = q
        .accept_session(MessageSessionPick::NextAvailable, BOB, 0)
        .expect("accept")
        .expect("granted");
    assert_eq!(&*second.session_id, "A");
    assert!(
        q.accept_session(MessageSessionPick::NextAvailable, ConsumerId(3), 0)
            .expect("accept")
            .is_none()
    );
    // A session whose messages are all locked is not available either.
    assert_eq!(bodies(&mut q, "A", BOB, 0, &mut journal), vec!["a1"]);
    q.release_session("A", BOB);
    assert!(
        q.accept_session(MessageSessionPick::NextAvailable, ConsumerId(3), 0)
            .expect("accept")
            .is_none()
    );
    assert_eq!(q.release_all(ALICE), 0);
    assert!(
        q.accept_session(MessageSessionPick::NextAvailable, ConsumerId(3), 0)
            .expect("accept")
            .is_some(),
        "release_all gives up ALICE's session B"
    );
}

#[test]
fn session_locks_expire_unless_renewed_and_renewal_carries_message_locks() {
    let mut q = queue();
    let mut journal = MemJournal::default();
    q.enqueue(
        vec![in_session("A", "a1"), in_session("A", "a2")],
        0,
        &mut journal,
    )
    .expect("enqueue");
    q.accept_session(MessageSessionPick::Id("A"), ALICE, 0)
        .expect("accept");
    let first = q
        .next_in_session("A", ReceiveMode::PeekLock, ALICE, 0, &mut journal)
        .expect("receive")
        .expect("a message");
    let lock = first.lock.expect("peek-locked");
    assert_eq!(
        lock.locked_until_ms, LOCK_MS,
        "message lock follows the session lock"
    );

    assert!(
        matches!(
            q.renew_session_lock("A", BOB, 900),
            Err(CoreError::SessionLockLost)
        ),
        "only the holder renews a session lock"
    );
    let renewed = q.renew_session_lock("A", ALICE, 900).expect("renew");
    assert_eq!(renewed, 900 + LOCK_MS);
    assert!(q.holds_session("A", ALICE, 1_500));
    q.complete(
        busbar_core::SubQueueKind::Main,
        lock.token,
        1_500,
        &mut journal,
    )
    .expect("the message lock was renewed with the session");

    assert!(!q.holds_session("A", ALICE, renewed));
    assert!(matches!(
        q.renew_session_lock("A", ALICE, renewed),
        Err(CoreError::SessionLockLost)
    ));
    assert!(matches!(
        q.next_in_session("A", ReceiveMode::PeekLock, ALICE, renewed, &mut journal),
        Err(CoreError::SessionLockLost)
    ));
    let taken_over = q
        .accept_session(MessageSessionPick::Id("A"), BOB, renewed)
        .expect("accept")
        .expect("granted");
    assert_eq!(taken_over.locked_until_ms, renewed + LOCK_MS);
    assert_eq!(bodies(&mut q, "A", BOB, renewed, &mut journal), vec!["a2"]);
}

#[test]
fn session_state_is_kept_replaced_cleared_and_survives_replay() {
    let mut q = queue();
    let mut journal = MemJournal::default();
    assert_eq!(q.session_state("A", &mut journal).expect("read"), None);
    q.set_session_state("A", Some(Bytes::from_static(b"one")), 0, &mut journal)
        .expect("set");
    q.set_session_state("A", Some(Bytes::from_static(b"two")), 1, &mut journal)
        .expect("replace");
    q.set_session_state("B", Some(Bytes::from_static(b"b")), 1, &mut journal)
        .expect("set");
    q.set_session_state("B", None, 2, &mut journal)
        .expect("clear");
    assert_eq!(
        q.session_state("A", &mut journal).expect("read").as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(q.session_state("B", &mut journal).expect("read"), None);
    assert_eq!(q.session_ids(), vec!["A".to_owned()]);

    let (live, last_seqs) = journal.replay();
    assert_eq!(live.len(), 1, "one state record stays live");
    let config = QueueConfig {
        requires_session: true,
        ..QueueConfig::default()
    };
    let restored = Queue::restore("sq", config, 10, 11, &last_seqs, live);
    assert_eq!(
        restored
            .session_state("A", &mut journal)
            .expect("read")
            .as_deref(),
        Some(&b"two"[..])
    );
    let mut restored = restored;
    restored
        .set_session_state("A", Some(Bytes::from_static(b"three")), 3, &mut journal)
        .expect("set after restore");
    let (live, _) = journal.replay();
    assert_eq!(
        live.len(),
        1,
        "the restored record was replaced, not duplicated"
    );
}

//! Random operation sequences against the log store and an in-memory model, with reopens
//! (some after garbage was appended to the log, as a crash mid-write leaves it), small
//! segments so rolling and reclamation happen, and a full comparison after every reopen.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;

use busbar_store::conformance::commit;
use busbar_store::log::{LogOptions, LogStore};
use busbar_store::{
    BodyRef, Durability, EntityId, MessageMeta, MessageState, Record, Recovered, Seq, Store,
};

#[derive(Debug, Clone)]
enum Op {
    /// A batch of new messages in one entity.
    Enqueue {
        entity: EntityId,
        bodies: Vec<usize>,
        session: bool,
    },
    Update {
        pick: usize,
        delivery_count: u32,
        state: u8,
    },
    Remove {
        picks: Vec<usize>,
    },
    /// Remove and re-enqueue with a new body under the same sequence number, in one batch.
    Rewrite {
        pick: usize,
        body: usize,
    },
    Reopen {
        garbage: Vec<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..3, prop::collection::vec(0usize..400, 1..4), any::<bool>())
            .prop_map(|(entity, bodies, session)| Op::Enqueue { entity, bodies, session }),
        2 => (any::<usize>(), 0u32..10, 0u8..3)
            .prop_map(|(pick, delivery_count, state)| Op::Update { pick, delivery_count, state }),
        3 => prop::collection::vec(any::<usize>(), 1..4).prop_map(|picks| Op::Remove { picks }),
        1 => (any::<usize>(), 0usize..400).prop_map(|(pick, body)| Op::Rewrite { pick, body }),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|garbage| Op::Reopen { garbage }),
    ]
}

#[derive(Default)]
struct Model {
    live: BTreeMap<(EntityId, Seq), (MessageMeta, Vec<u8>, BodyRef)>,
    last_seq: HashMap<EntityId, Seq>,
}

impl Model {
    fn pick(&self, n: usize) -> Option<(EntityId, Seq)> {
        if self.live.is_empty() {
            return None;
        }
        self.live.keys().nth(n % self.live.len()).copied()
    }
}

fn body(len: usize, salt: u64) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 7 + salt) as u8).collect()
}

fn state(s: u8) -> MessageState {
    match s {
        0 => MessageState::Active,
        1 => MessageState::Deferred,
        _ => MessageState::Scheduled,
    }
}

fn check(store: &LogStore, rec: &Recovered, model: &mut Model) -> Result<(), TestCaseError> {
    let got: Vec<(EntityId, Seq)> = rec.messages.iter().map(|m| (m.entity, m.seq)).collect();
    let want: Vec<(EntityId, Seq)> = model.live.keys().copied().collect();
    prop_assert_eq!(got, want);
    prop_assert_eq!(&rec.last_seq, &model.last_seq);
    for m in &rec.messages {
        let Some(entry) = model.live.get_mut(&(m.entity, m.seq)) else {
            continue;
        };
        prop_assert_eq!(&m.meta, &entry.0);
        let read = store
            .read_body(m.body)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&read[..], &entry.1[..]);
        entry.2 = m.body;
    }
    Ok(())
}

fn last_segment(dir: &Path) -> Option<std::path::PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max()
}

fn run(ops: Vec<Op>, options: LogOptions) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let open =
        || LogStore::open(dir.path(), options).map_err(|e| TestCaseError::fail(e.to_string()));
    let (mut store, _) = open()?;
    let mut model = Model::default();
    let mut salt = 0u64;
    for op in ops {
        match op {
            Op::Enqueue {
                entity,
                bodies,
                session,
            } => {
                let mut records = Vec::new();
                let mut added = Vec::new();
                for len in bodies {
                    salt += 1;
                    let last = model.last_seq.entry(entity).or_insert(0);
                    *last += 1;
                    let meta = MessageMeta {
                        enqueued_at_ms: salt as i64,
                        expires_at_ms: salt.is_multiple_of(3).then_some(salt as i64 * 10),
                        session_id: session.then(|| format!("s{salt}").into()),
                        ..MessageMeta::default()
                    };
                    let b = body(len, salt);
                    records.push(Record::Enqueue {
                        entity,
                        seq: *last,
                        meta: meta.clone(),
                        body: Bytes::from(b.clone()),
                    });
                    added.push(((entity, *last), meta, b));
                }
                let refs = commit(&store, records);
                prop_assert_eq!(refs.len(), added.len());
                for ((key, meta, b), r) in added.into_iter().zip(refs) {
                    model.live.insert(key, (meta, b, r));
                }
            }
            Op::Update {
                pick,
                delivery_count,
                state: s,
            } => {
                let Some(key) = model.pick(pick) else {
                    continue;
                };
                commit(
                    &store,
                    vec![Record::Update {
                        entity: key.0,
                        seq: key.1,
                        delivery_count,
                        state: state(s),
                    }],
                );
                if let Some(entry) = model.live.get_mut(&key) {
                    entry.0.delivery_count = delivery_count;
                    entry.0.state = state(s);
                }
            }
            Op::Remove { picks } => {
                let mut records = Vec::new();
                for p in picks {
                    let Some(key) = model.pick(p) else { continue };
                    if let Some((_, _, r)) = model.live.remove(&key) {
                        records.push(Record::Remove {
                            entity: key.0,
                            seq: key.1,
                            body: r,
                        });
                    }
                }
                if !records.is_empty() {
                    commit(&store, records);
                }
            }
            Op::Rewrite { pick, body: len } => {
                let Some(key) = model.pick(pick) else {
                    continue;
                };
                let Some((meta, _, old)) = model.live.get(&key).cloned() else {
                    continue;
                };
                salt += 1;
                let b = body(len, salt);
                let meta = MessageMeta {
                    delivery_count: meta.delivery_count + 1,
                    ..meta
                };
                let refs = commit(
                    &store,
                    vec![
                        Record::Remove {
                            entity: key.0,
                            seq: key.1,
                            body: old,
                        },
                        Record::Enqueue {
                            entity: key.0,
                            seq: key.1,
                            meta: meta.clone(),
                            body: Bytes::from(b.clone()),
                        },
                    ],
                );
                prop_assert_eq!(refs.len(), 1);
                let read = store
                    .read_body(refs[0])
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&read[..], &b[..]);
                model.live.insert(key, (meta, b, refs[0]));
            }
            Op::Reopen { garbage } => {
                store
                    .close()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                drop(store);
                if !garbage.is_empty()
                    && let Some(seg) = last_segment(dir.path())
                {
                    let mut f = OpenOptions::new()
                        .append(true)
                        .open(seg)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    f.write_all(&garbage)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                let (s, rec) = open()?;
                store = s;
                check(&store, &rec, &mut model)?;
            }
        }
    }
    store
        .close()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    drop(store);
    let (store, rec) = open()?;
    check(&store, &rec, &mut model)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(
        ops in prop::collection::vec(op(), 1..60),
        segment_bytes in prop::sample::select(vec![200u64, 1000, 1 << 20]),
        sync in any::<bool>(),
    ) {
        let durability = if sync { Durability::Sync } else { Durability::Buffered };
        run(ops, LogOptions { durability, segment_bytes })?;
    }
}

//! Topic admission: duplicate detection that survives a restart, and the TTL cap.

mod common;

use std::collections::HashMap;

use busbar_core::NewMessage;
use busbar_core::topic::{Topic, TopicConfig};
use bytes::Bytes;
use common::MemJournal;

fn message(id: &str, ttl_ms: Option<i64>) -> NewMessage {
    NewMessage {
        body: Bytes::from_static(b"m"),
        message_id: Some(id.into()),
        session_id: None,
        ttl_ms,
        scheduled_at_ms: None,
    }
}

const TOPIC_ENTITY: u32 = 7;

#[test]
fn duplicates_within_the_window_are_dropped_and_the_window_survives_a_restart() {
    let config = TopicConfig {
        requires_duplicate_detection: true,
        duplicate_detection_window_ms: 1_000,
        ..TopicConfig::default()
    };
    let mut topic = Topic::restore("t", config.clone(), TOPIC_ENTITY, &HashMap::new(), []);
    let mut journal = MemJournal::default();
    let admitted = topic
        .admit(
            vec![message("a", None), message("a", None), message("b", None)],
            0,
            &mut journal,
        )
        .expect("admitted");
    let ids: Vec<_> = admitted.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(ids, vec![Some("a".into()), Some("b".into())]);
    let again = topic
        .admit(vec![message("a", None)], 500, &mut journal)
        .expect("admitted");
    assert!(again.is_empty(), "a duplicate within the window passed");

    let (live, last_seqs) = journal.replay();
    let mut restored = Topic::restore("t", config, TOPIC_ENTITY, &last_seqs, live);
    assert_eq!(restored.remembered_ids(), 2);
    let after = restored
        .admit(vec![message("a", None)], 900, &mut journal)
        .expect("admitted");
    assert!(after.is_empty(), "the window did not survive the restart");
    let late = restored
        .admit(vec![message("a", None)], 1_500, &mut journal)
        .expect("admitted");
    assert_eq!(late.len(), 1, "an id past the window is new again");
    let (live, _) = journal.replay();
    assert_eq!(live.len(), 1, "expired markers are removed from the log");
}

#[test]
fn a_failed_append_admits_nothing_and_remembers_nothing() {
    let config = TopicConfig {
        requires_duplicate_detection: true,
        ..TopicConfig::default()
    };
    let mut topic = Topic::restore("t", config, TOPIC_ENTITY, &HashMap::new(), []);
    let mut journal = MemJournal::default();
    journal.fail_next_append = true;
    assert!(
        topic
            .admit(vec![message("a", None)], 0, &mut journal)
            .is_err()
    );
    assert_eq!(topic.remembered_ids(), 0);
    let retried = topic
        .admit(vec![message("a", None)], 1, &mut journal)
        .expect("admitted");
    assert_eq!(retried.len(), 1);
}

#[test]
fn without_detection_nothing_is_journaled_and_the_ttl_is_capped() {
    let config = TopicConfig {
        default_ttl_ms: Some(100),
        ..TopicConfig::default()
    };
    let mut topic = Topic::restore("t", config, TOPIC_ENTITY, &HashMap::new(), []);
    let mut journal = MemJournal::default();
    let admitted = topic
        .admit(
            vec![
                message("a", None),
                message("a", Some(50)),
                message("b", Some(500)),
            ],
            0,
            &mut journal,
        )
        .expect("admitted");
    let ttls: Vec<_> = admitted.iter().map(|m| m.ttl_ms).collect();
    assert_eq!(ttls, vec![Some(100), Some(50), Some(100)]);
    assert!(journal.appends.is_empty());
}

mod selection {
    use busbar_core::filter::{FilterValue, PropertySource};
    use busbar_core::namespace::{FilterDescription, RuleDescription};
    use busbar_core::rules::{Rule, select};

    struct Props(Vec<(&'static str, FilterValue)>);

    impl PropertySource for Props {
        fn system(&self, _name: &str) -> Option<FilterValue> {
            None
        }
        fn user(&self, name: &str) -> Option<FilterValue> {
            self.0
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn rule(name: &str, sql: &str, action: Option<&str>) -> Rule {
        Rule::compile(&RuleDescription {
            name: name.to_owned(),
            filter: FilterDescription::Sql(sql.to_owned()),
            action: action.map(str::to_owned),
        })
        .expect("valid rule")
    }

    #[test]
    fn rules_without_action_give_one_copy_and_each_action_rule_its_own() {
        let rules = vec![
            rule("a", "n > 1", None),
            rule("b", "n > 2", None),
            rule("tag", "n > 3", Some("SET tagged = TRUE")),
            rule("never", "n > 100", Some("SET x = 1")),
            rule("tag2", "EXISTS(n)", Some("REMOVE n")),
        ];
        let message = Props(vec![("n", FilterValue::Long(5))]);
        let selection = select(&rules, &message);
        assert!(selection.unchanged);
        let annotated: Vec<_> = selection
            .annotated
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(annotated, vec!["tag", "tag2"]);
        assert!(selection.error.is_none());

        let small = Props(vec![("n", FilterValue::Long(0))]);
        let selection = select(&rules, &small);
        assert!(!selection.unchanged);
        assert_eq!(selection.annotated.len(), 1, "only EXISTS(n) matches");
        assert!(!select(&rules, &Props(vec![])).unchanged);
        assert!(select(&rules, &Props(vec![])).is_empty());
    }

    #[test]
    fn a_failing_filter_is_reported_and_takes_nothing() {
        let rules = vec![rule("typed", "n > 1", None), rule("other", "m = 1", None)];
        let message = Props(vec![("n", FilterValue::String("five".into()))]);
        let selection = select(&rules, &message);
        assert!(selection.is_empty());
        let (name, _) = selection.error.expect("the type error is reported");
        assert_eq!(name, "typed");
    }

    #[test]
    fn default_rule_takes_everything_and_bad_sql_does_not_compile() {
        let default = Rule::compile(&RuleDescription::default_rule()).expect("valid");
        assert!(select(&[default], &Props(vec![])).unchanged);
        let bad = Rule::compile(&RuleDescription {
            name: "bad".into(),
            filter: FilterDescription::Sql("n >".into()),
            action: None,
        });
        assert!(bad.is_err());
    }
}

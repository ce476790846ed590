//! SQL filter and rule action parsing and evaluation must never panic, whatever the
//! expression (it arrives from clients over `add-rule` and from config files).
#![no_main]

use busbar_core::filter::{FilterValue, PropertySource, SqlFilter, SqlRuleAction};
use libfuzzer_sys::fuzz_target;

struct Message;

impl PropertySource for Message {
    fn system(&self, name: &str) -> Option<FilterValue> {
        match name {
            "Label" => Some(FilterValue::String("created".into())),
            "MessageId" => Some(FilterValue::String("m-1".into())),
            _ => None,
        }
    }

    fn user(&self, name: &str) -> Option<FilterValue> {
        match name {
            "amount" => Some(FilterValue::Long(150)),
            "ratio" => Some(FilterValue::Double(0.5)),
            "region" => Some(FilterValue::String("eu".into())),
            "vip" => Some(FilterValue::Bool(true)),
            "nothing" => Some(FilterValue::Null),
            _ => None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(filter) = SqlFilter::parse(text) {
        let _ = filter.matches(&Message);
    }
    if let Ok(action) = SqlRuleAction::parse(text) {
        let _ = action.changes(&Message);
    }
});

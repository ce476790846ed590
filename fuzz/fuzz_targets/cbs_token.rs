//! `$cbs` put-token bodies arrive before any authentication: parsing and validating a token
//! must never panic, and a token signed with a configured key must validate to exactly what
//! it was signed for.
#![no_main]

use busbar_servicebus::sas::{
    self, AuthError, DEFAULT_KEY_NAME, DEFAULT_KEY_VALUE, Policy, Rights,
};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;
const GRACE_SECS: u64 = 5;

fuzz_target!(|data: &[u8]| {
    let policies = policies();

    // Arbitrary text as the token.
    let text = String::from_utf8_lossy(data);
    let _ = sas::parse(&text);
    if let Ok(claims) = sas::validate(&text, &policies, NOW, GRACE_SECS) {
        let _ = claims.covers("q1/$management");
        let _ = claims.covers(&text);
    }

    // A well-signed token for an arbitrary expiry, policy and audience, so the signature,
    // audience and expiry checks are reached too.
    let Some((head, rest)) = data.split_first_chunk::<9>() else {
        return;
    };
    let [expiry @ .., choice] = *head;
    let expires_at = u64::from_le_bytes(expiry);
    let policy = &policies[usize::from(choice) % policies.len()];
    let audience = String::from_utf8_lossy(rest);
    if audience.is_empty() {
        // A token must name its resource; an empty `sr` is refused as malformed.
        return;
    }
    let token = sas::generate_token(&audience, &policy.name, &policy.key, expires_at);
    let outcome = sas::validate(&token, &policies, NOW, GRACE_SECS);
    if expires_at.saturating_add(GRACE_SECS) <= NOW {
        assert_eq!(
            outcome,
            Err(AuthError::Expired {
                expired_at: expires_at,
                now: NOW
            })
        );
    } else {
        let claims = match outcome {
            Ok(claims) => claims,
            Err(error) => panic!("a token signed with {policy:?} was refused: {error}"),
        };
        assert_eq!(claims.audience, sas::audience_path(&audience));
        assert_eq!(claims.key_name, policy.name);
        assert_eq!(claims.rights, policy.rights);
        assert_eq!(claims.expires_at, expires_at);
    }
});

/// Policies with names that need encoding, so the key-name decodings are exercised.
fn policies() -> Vec<Policy> {
    vec![
        Policy {
            name: DEFAULT_KEY_NAME.to_owned(),
            key: DEFAULT_KEY_VALUE.to_owned(),
            rights: Rights::ALL,
        },
        Policy {
            name: "sender".to_owned(),
            key: "c2VuZGVyLWtleQ==".to_owned(),
            rights: Rights {
                send: true,
                ..Rights::default()
            },
        },
        Policy {
            name: "listen only/1+2 %".to_owned(),
            key: "é key".to_owned(),
            rights: Rights {
                listen: true,
                ..Rights::default()
            },
        },
    ]
}

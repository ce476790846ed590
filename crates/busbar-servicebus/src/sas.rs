//! Shared Access Signature tokens: parsing, validation against configured policies, and
//! generation.
//!
//! A token looks like
//! `SharedAccessSignature sr=<enc(audience)>&sig=<enc(base64 hmac)>&se=<unix secs>&skn=<enc(key name)>`
//! with the fields in any order. The signature is HMAC-SHA256, keyed with the UTF-8 bytes of the
//! policy's key string (not base64-decoded), over the *raw* `sr` text as it appears in the token
//! plus `"\n"` plus the raw `se` text. Signing the raw text means the broker never has to
//! reproduce a client's URL encoder (Python's `quote_plus` and JS's `encodeURIComponent` differ).

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix that marks a SAS token; anything else (a JWT, say) is not ours to validate.
pub const TOKEN_PREFIX: &str = "SharedAccessSignature ";

/// Name of the policy Microsoft's emulator and its documented connection string use.
pub const DEFAULT_KEY_NAME: &str = "RootManageSharedAccessKey";

/// The dummy key every emulator connection string carries.
pub const DEFAULT_KEY_VALUE: &str = "SAS_KEY_VALUE";

/// What a policy (and so a token signed with its key) allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rights {
    pub manage: bool,
    pub send: bool,
    pub listen: bool,
}

impl Rights {
    /// Manage, send and listen.
    pub const ALL: Rights = Rights {
        manage: true,
        send: true,
        listen: true,
    };

    /// Sending is allowed by `Send`, and by `Manage`, which implies it in Service Bus.
    pub const fn can_send(self) -> bool {
        self.send || self.manage
    }

    /// Receiving is allowed by `Listen`, and by `Manage`, which implies it in Service Bus.
    pub const fn can_listen(self) -> bool {
        self.listen || self.manage
    }

    pub const fn can_manage(self) -> bool {
        self.manage
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::with_capacity(3);
        if self.manage {
            names.push("Manage");
        }
        if self.send {
            names.push("Send");
        }
        if self.listen {
            names.push("Listen");
        }
        if names.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// A shared access policy: a named key and the rights tokens signed with it carry.
#[derive(Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub key: String,
    pub rights: Rights,
}

// The key is a secret: keep it out of logs and panic messages.
impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("rights", &self.rights)
            .finish()
    }
}

/// Finds a policy by key name (the token's `skn`). Key names are matched exactly.
pub trait KeyLookup {
    fn policy(&self, key_name: &str) -> Option<&Policy>;
}

impl KeyLookup for HashMap<String, Policy> {
    fn policy(&self, key_name: &str) -> Option<&Policy> {
        self.get(key_name)
    }
}

impl KeyLookup for [Policy] {
    fn policy(&self, key_name: &str) -> Option<&Policy> {
        self.iter().find(|policy| policy.name == key_name)
    }
}

impl KeyLookup for Vec<Policy> {
    fn policy(&self, key_name: &str) -> Option<&Policy> {
        self.as_slice().policy(key_name)
    }
}

/// Why a token was refused. The `Display` text is meant for the CBS `status-description` and
/// the broker's log; it never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token doesn't start with `SharedAccessSignature ` (e.g. a JWT).
    #[error("unsupported token type: only SharedAccessSignature tokens are accepted")]
    UnsupportedTokenType,
    #[error("malformed SharedAccessSignature token: {0}")]
    Malformed(String),
    #[error("unknown shared access key name '{0}'")]
    UnknownKeyName(String),
    #[error("invalid signature for shared access key name '{0}'")]
    BadSignature(String),
    #[error("token expired at {expired_at} (unix seconds); broker time is {now}")]
    Expired { expired_at: u64, now: u64 },
}

impl AuthError {
    /// The CBS `put-token` status code for this refusal: 400 for a token we can't read,
    /// 401 for one we read but don't accept.
    pub fn cbs_status_code(&self) -> i32 {
        match self {
            AuthError::UnsupportedTokenType | AuthError::Malformed(_) => 400,
            AuthError::UnknownKeyName(_)
            | AuthError::BadSignature(_)
            | AuthError::Expired { .. } => 401,
        }
    }
}

/// What a validated token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The entity path the token is scoped to: the URL-decoded `sr` without scheme, host and
    /// port, and without leading or trailing slashes. Case is preserved; `""` is the whole
    /// namespace.
    pub audience: String,
    /// The (decoded) policy name that signed the token.
    pub key_name: String,
    pub rights: Rights,
    /// The token's `se`, in unix seconds.
    pub expires_at: u64,
}

impl Claims {
    /// Whether the token's scope includes `entity_path` (e.g. `q1`, `q1/$DeadLetterQueue`,
    /// `t1/Subscriptions/s1/$management`). Matching is a case-insensitive prefix match on
    /// whole path segments, so a token for `q1` covers `q1/$management` but not `q10`.
    pub fn covers(&self, entity_path: &str) -> bool {
        path_covers(&self.audience, entity_path)
    }

    /// Whether the token has expired at `now_unix_secs`, allowing `grace_secs` of clock skew.
    pub fn is_expired(&self, now_unix_secs: u64, grace_secs: u64) -> bool {
        self.expires_at.saturating_add(grace_secs) <= now_unix_secs
    }
}

/// Whether `scope` (an audience path) includes `entity_path`; see [`Claims::covers`].
pub fn path_covers(scope: &str, entity_path: &str) -> bool {
    let scope = scope.trim_matches('/');
    let entity = entity_path.trim_matches('/');
    if scope.is_empty() {
        return true;
    }
    let Some(head) = entity.get(..scope.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(scope) {
        return false;
    }
    matches!(entity.as_bytes().get(scope.len()), None | Some(b'/'))
}

/// The fields of a SAS token, as they appear in the token (still percent-encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawToken<'a> {
    pub resource: &'a str,
    pub signature: &'a str,
    pub expiry: &'a str,
    pub key_name: &'a str,
}

/// Splits a token into its raw fields. Field order doesn't matter; each of `sr`, `sig`,
/// `se` and `skn` must appear exactly once. Unknown fields are ignored.
pub fn parse(token: &str) -> Result<RawToken<'_>, AuthError> {
    let body = token
        .trim()
        .strip_prefix(TOKEN_PREFIX.trim_end())
        .ok_or(AuthError::UnsupportedTokenType)?;
    // The prefix must be followed by whitespace: "SharedAccessSignaturesr=..." is not a SAS token.
    if !body.starts_with(char::is_whitespace) {
        return Err(AuthError::UnsupportedTokenType);
    }
    let body = body.trim_start();

    let mut resource = None;
    let mut signature = None;
    let mut expiry = None;
    let mut key_name = None;
    for pair in body.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| AuthError::Malformed(format!("field '{pair}' has no '='")))?;
        let slot = match name {
            "sr" => &mut resource,
            "sig" => &mut signature,
            "se" => &mut expiry,
            "skn" => &mut key_name,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(AuthError::Malformed(format!(
                "field '{name}' appears twice"
            )));
        }
    }
    fn required<'t>(value: Option<&'t str>, name: &str) -> Result<&'t str, AuthError> {
        value
            .filter(|value| !value.is_empty())
            .ok_or_else(|| AuthError::Malformed(format!("missing '{name}'")))
    }
    Ok(RawToken {
        resource: required(resource, "sr")?,
        signature: required(signature, "sig")?,
        expiry: required(expiry, "se")?,
        key_name: required(key_name, "skn")?,
    })
}

/// Validates `token` against `keys` and returns what it grants.
///
/// Order of checks: format, key name, signature, expiry. `grace_secs` tolerates clock skew:
/// a token is expired once `se + grace_secs <= now_unix_secs`.
pub fn validate<K: KeyLookup + ?Sized>(
    token: &str,
    keys: &K,
    now_unix_secs: u64,
    grace_secs: u64,
) -> Result<Claims, AuthError> {
    let raw = parse(token)?;

    let expires_at: u64 = raw
        .expiry
        .parse()
        .map_err(|_| AuthError::Malformed(format!("'se' is not unix seconds: '{}'", raw.expiry)))?;
    let audience_url = decode_utf8(raw.resource, "sr")?;
    let signature_b64 = decode_utf8(raw.signature, "sig")?;
    let signature = BASE64
        .decode(signature_b64.as_bytes())
        .map_err(|_| AuthError::Malformed("'sig' is not base64".to_owned()))?;

    let (key_name, policy) = find_policy(raw.key_name, keys)?;

    let mut mac = HmacSha256::new_from_slice(policy.key.as_bytes())
        .map_err(|_| AuthError::Malformed("unusable key".to_owned()))?;
    mac.update(raw.resource.as_bytes());
    mac.update(b"\n");
    mac.update(raw.expiry.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| AuthError::BadSignature(key_name.clone()))?;

    let claims = Claims {
        audience: audience_path(&audience_url).to_owned(),
        key_name,
        rights: policy.rights,
        expires_at,
    };
    if claims.is_expired(now_unix_secs, grace_secs) {
        return Err(AuthError::Expired {
            expired_at: expires_at,
            now: now_unix_secs,
        });
    }
    Ok(claims)
}

/// Validates SASL PLAIN credentials as Service Bus does: the user name is a policy's key
/// name and the password its key. They grant the policy's rights on the whole namespace
/// for the life of the connection, as a token for the namespace would.
pub fn validate_plain<K: KeyLookup + ?Sized>(
    key_name: &str,
    key: &str,
    keys: &K,
) -> Result<Claims, AuthError> {
    let policy = keys
        .policy(key_name)
        .ok_or_else(|| AuthError::UnknownKeyName(key_name.to_owned()))?;
    if !constant_time_eq(policy.key.as_bytes(), key.as_bytes()) {
        return Err(AuthError::BadSignature(key_name.to_owned()));
    }
    Ok(Claims {
        audience: String::new(),
        key_name: key_name.to_owned(),
        rights: policy.rights,
        expires_at: u64::MAX,
    })
}

/// Compares secrets without stopping at the first difference, so the time taken does not
/// tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Looks the key name up as written, then with the decodings clients are known to apply:
/// one percent-decoding (JS), two (Python double-encodes `skn`), and form decoding (`+` as
/// space, from Python's `quote_plus`).
fn find_policy<'k, K: KeyLookup + ?Sized>(
    raw_key_name: &str,
    keys: &'k K,
) -> Result<(String, &'k Policy), AuthError> {
    let once = decode_utf8(raw_key_name, "skn")?;
    let mut candidates = vec![once.clone()];
    let mut push = |candidate: String| {
        if !candidates.contains(&candidate) {
            candidates.push(candidate);
        }
    };
    if let Ok(twice) = decode_utf8(&once, "skn") {
        push(twice.clone());
        push(twice.replace('+', " "));
    }
    let form_once = decode_utf8(&raw_key_name.replace('+', " "), "skn")?;
    if let Ok(form_twice) = decode_utf8(&form_once.replace('+', " "), "skn") {
        push(form_twice);
    }
    push(form_once);

    for candidate in candidates {
        if let Some(policy) = keys.policy(&candidate) {
            return Ok((candidate, policy));
        }
    }
    Err(AuthError::UnknownKeyName(once))
}

fn decode_utf8(raw: &str, field: &str) -> Result<String, AuthError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| AuthError::Malformed(format!("'{field}' is not UTF-8 once URL-decoded")))
}

/// The entity path of an audience URL: scheme, host, port and query dropped, no leading or
/// trailing slash. Text without `://` is taken to be a path already. (The JS administration
/// client signs the whole request URL, `api-version` query included.)
pub fn audience_path(audience: &str) -> &str {
    let audience = audience
        .split_once('?')
        .map_or(audience, |(url, _query)| url);
    let path = match audience.split_once("://") {
        Some((_scheme, rest)) => rest.find('/').map_or("", |slash| &rest[slash..]),
        None => audience,
    };
    path.trim_matches('/')
}

/// Characters `encodeURIComponent` leaves alone: `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Builds a token for `audience` (e.g. `sb://localhost/q1`) signed with `key`, valid until
/// `expiry_unix` seconds, encoded the way the JS SDK encodes it.
pub fn generate_token(audience: &str, key_name: &str, key: &str, expiry_unix: u64) -> String {
    let resource = utf8_percent_encode(audience, URI_COMPONENT).to_string();
    let expiry = expiry_unix.to_string();
    let signature = BASE64.encode(sign(key, &resource, &expiry));
    format!(
        "{TOKEN_PREFIX}sr={resource}&sig={}&se={expiry}&skn={}",
        utf8_percent_encode(&signature, URI_COMPONENT),
        utf8_percent_encode(key_name, URI_COMPONENT),
    )
}

fn sign(key: &str, raw_resource: &str, raw_expiry: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this never fails; an empty MAC would simply not verify.
    let Ok(mut mac) = HmacSha256::new_from_slice(key.as_bytes()) else {
        return Vec::new();
    };
    mac.update(raw_resource.as_bytes());
    mac.update(b"\n");
    mac.update(raw_expiry.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn plain_credentials_are_a_key_name_and_its_key() {
        let keys = vec![Policy {
            name: "sender".to_owned(),
            key: "secret".to_owned(),
            rights: Rights {
                send: true,
                ..Rights::default()
            },
        }];
        let claims = validate_plain("sender", "secret", &keys).unwrap();
        assert_eq!(claims.audience, "");
        assert!(claims.rights.can_send() && !claims.rights.can_listen());
        assert!(!claims.is_expired(u64::MAX - 1, 0));
        assert_eq!(
            validate_plain("sender", "secreT", &keys),
            Err(AuthError::BadSignature("sender".to_owned()))
        );
        assert_eq!(
            validate_plain("sender", "", &keys),
            Err(AuthError::BadSignature("sender".to_owned()))
        );
        assert_eq!(
            validate_plain("nobody", "secret", &keys),
            Err(AuthError::UnknownKeyName("nobody".to_owned()))
        );
    }

    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn root_policy() -> Policy {
        Policy {
            name: DEFAULT_KEY_NAME.to_owned(),
            key: DEFAULT_KEY_VALUE.to_owned(),
            rights: Rights::ALL,
        }
    }

    fn keys() -> Vec<Policy> {
        vec![
            root_policy(),
            Policy {
                name: "sender".to_owned(),
                key: "c2VuZGVyLWtleQ==".to_owned(),
                rights: Rights {
                    send: true,
                    ..Rights::default()
                },
            },
        ]
    }

    #[test]
    fn generated_token_validates_and_carries_policy_rights() {
        let token = generate_token(
            "sb://localhost:5672/q1",
            "sender",
            "c2VuZGVyLWtleQ==",
            NOW + 3600,
        );
        let claims = validate(&token, &keys(), NOW, 0).unwrap();
        assert_eq!(claims.audience, "q1");
        assert_eq!(claims.key_name, "sender");
        assert_eq!(claims.expires_at, NOW + 3600);
        assert!(claims.rights.can_send());
        assert!(!claims.rights.can_listen());
    }

    #[test]
    fn key_is_used_as_utf8_text_not_base64_decoded() {
        // Sign with the base64-decoded bytes, as a careless implementation would verify.
        let decoded_key = BASE64.decode("c2VuZGVyLWtleQ==").unwrap();
        let resource = "sb%3A%2F%2Fhost%2Fq1";
        let expiry = (NOW + 60).to_string();
        let mut mac = HmacSha256::new_from_slice(&decoded_key).unwrap();
        mac.update(format!("{resource}\n{expiry}").as_bytes());
        let sig = BASE64.encode(mac.finalize().into_bytes());
        let token = format!(
            "SharedAccessSignature sr={resource}&sig={}&se={expiry}&skn=sender",
            utf8_percent_encode(&sig, URI_COMPONENT)
        );
        assert_eq!(
            validate(&token, &keys(), NOW, 0),
            Err(AuthError::BadSignature("sender".to_owned()))
        );
    }

    #[test]
    fn accepts_a_token_captured_from_the_python_sdk() {
        // Observed on the wire: SAS_KEY_VALUE, audience sb://localhost:5673/q1.
        let token = "SharedAccessSignature sr=sb%3A%2F%2Flocalhost%3A5673%2Fq1&sig=zmmXdH9ZeyxExwOOzQeu%2FmgcveTExdWEhHUuyjovMKo%3D&se=1795535890&skn=RootManageSharedAccessKey";
        let claims = validate(token, &keys(), 1_795_535_000, 0).unwrap();
        assert_eq!(claims.audience, "q1");
        assert_eq!(claims.rights, Rights::ALL);
        assert!(matches!(
            validate(token, &keys(), 1_795_535_890, 0),
            Err(AuthError::Expired { .. })
        ));
    }

    #[test]
    fn signature_covers_the_raw_resource_text() {
        // Python's quote_plus turns a space into '+', JS into %20; both must verify as sent.
        let key = DEFAULT_KEY_VALUE;
        for resource in ["sb%3A%2F%2Fhost%2Fa+b", "sb%3A%2F%2Fhost%2Fa%20b"] {
            let expiry = (NOW + 60).to_string();
            let sig = BASE64.encode(sign(key, resource, &expiry));
            let token = format!(
                "SharedAccessSignature sr={resource}&sig={}&se={expiry}&skn={DEFAULT_KEY_NAME}",
                utf8_percent_encode(&sig, URI_COMPONENT)
            );
            assert!(validate(&token, &keys(), NOW, 0).is_ok(), "{resource}");
        }
    }

    #[test]
    fn fields_may_come_in_any_order() {
        let token = generate_token("sb://h/q1", DEFAULT_KEY_NAME, DEFAULT_KEY_VALUE, NOW + 10);
        let raw = parse(&token).unwrap();
        let reordered = format!(
            "SharedAccessSignature skn={}&se={}&sig={}&sr={}",
            raw.key_name, raw.expiry, raw.signature, raw.resource
        );
        assert_eq!(
            validate(&reordered, &keys(), NOW, 0).unwrap(),
            validate(&token, &keys(), NOW, 0).unwrap()
        );
    }

    #[test]
    fn tampered_expiry_or_resource_fails_the_signature() {
        let token = generate_token("sb://h/q1", DEFAULT_KEY_NAME, DEFAULT_KEY_VALUE, NOW + 10);
        let longer = token.replace(&format!("se={}", NOW + 10), &format!("se={}", NOW + 10_000));
        assert!(matches!(
            validate(&longer, &keys(), NOW, 0),
            Err(AuthError::BadSignature(_))
        ));
        let wider = token.replace("sr=sb%3A%2F%2Fh%2Fq1", "sr=sb%3A%2F%2Fh%2F");
        assert!(matches!(
            validate(&wider, &keys(), NOW, 0),
            Err(AuthError::BadSignature(_))
        ));
    }

    #[test]
    fn wrong_key_is_a_bad_signature() {
        let token = generate_token("sb://h/q1", DEFAULT_KEY_NAME, "other key", NOW + 10);
        let err = validate(&token, &keys(), NOW, 0).unwrap_err();
        assert_eq!(err, AuthError::BadSignature(DEFAULT_KEY_NAME.to_owned()));
        assert_eq!(err.cbs_status_code(), 401);
    }

    #[test]
    fn unknown_key_name_is_reported_decoded() {
        let token = generate_token("sb://h/q1", "no such/key", DEFAULT_KEY_VALUE, NOW + 10);
        let err = validate(&token, &keys(), NOW, 0).unwrap_err();
        assert_eq!(err, AuthError::UnknownKeyName("no such/key".to_owned()));
        assert_eq!(err.cbs_status_code(), 401);
    }

    #[test]
    fn double_encoded_and_form_encoded_key_names_are_found() {
        let policy = Policy {
            name: "my key/1".to_owned(),
            key: "k".to_owned(),
            rights: Rights::ALL,
        };
        let policies = vec![policy];
        // Python applies quote_plus twice: "my key/1" -> "my+key%2F1" -> "my%2Bkey%252F1".
        for encoded in ["my%2Bkey%252F1", "my+key%2F1", "my%20key%2F1"] {
            let good = generate_token("sb://h/q1", "placeholder", "k", NOW + 10);
            let token = good.replace("skn=placeholder", &format!("skn={encoded}"));
            let claims = validate(&token, &policies, NOW, 0).unwrap();
            assert_eq!(claims.key_name, "my key/1", "{encoded}");
        }
    }

    #[test]
    fn expiry_honours_grace() {
        let token = generate_token("sb://h/q1", DEFAULT_KEY_NAME, DEFAULT_KEY_VALUE, NOW);
        assert_eq!(
            validate(&token, &keys(), NOW, 0),
            Err(AuthError::Expired {
                expired_at: NOW,
                now: NOW
            })
        );
        assert!(validate(&token, &keys(), NOW, 5).is_ok());
        assert!(validate(&token, &keys(), NOW + 5, 5).is_err());
    }

    #[test]
    fn hash_map_lookup_works() {
        let map: HashMap<String, Policy> =
            keys().into_iter().map(|p| (p.name.clone(), p)).collect();
        let token = generate_token("sb://h/", DEFAULT_KEY_NAME, DEFAULT_KEY_VALUE, NOW + 10);
        let claims = validate(&token, &map, NOW, 0).unwrap();
        assert_eq!(claims.audience, "");
        assert!(claims.covers("anything/at/all"));
    }

    #[test]
    fn malformed_tokens_are_distinguished() {
        let cases = [
            ("Bearer eyJhbGciOi", AuthError::UnsupportedTokenType),
            ("SharedAccessSignaturesr=a", AuthError::UnsupportedTokenType),
            (
                "SharedAccessSignature sr=a&sig=b&se=1",
                AuthError::Malformed("missing 'skn'".to_owned()),
            ),
            (
                "SharedAccessSignature sr=a&sr=b&sig=c&se=1&skn=d",
                AuthError::Malformed("field 'sr' appears twice".to_owned()),
            ),
            (
                "SharedAccessSignature sr=a&sig&se=1&skn=d",
                AuthError::Malformed("field 'sig' has no '='".to_owned()),
            ),
            (
                "SharedAccessSignature sr=a&sig=AAAA&se=soon&skn=d",
                AuthError::Malformed("'se' is not unix seconds: 'soon'".to_owned()),
            ),
            (
                "SharedAccessSignature sr=a&sig=%%%&se=1&skn=d",
                AuthError::Malformed("'sig' is not base64".to_owned()),
            ),
            (
                "SharedAccessSignature sr=%FF&sig=AAAA&se=1&skn=d",
                AuthError::Malformed("'sr' is not UTF-8 once URL-decoded".to_owned()),
            ),
        ];
        for (token, expected) in cases {
            let err = validate(token, &keys(), NOW, 0).unwrap_err();
            assert_eq!(err, expected, "{token}");
            assert_eq!(err.cbs_status_code(), 400, "{token}");
        }
    }

    #[test]
    fn audience_path_drops_scheme_host_and_port() {
        assert_eq!(audience_path("sb://localhost:5672/q1"), "q1");
        assert_eq!(
            audience_path("sb://Container-Host/Site1/MyQueue/"),
            "Site1/MyQueue"
        );
        assert_eq!(audience_path("amqps://127.0.0.1"), "");
        assert_eq!(audience_path("sb://h/"), "");
        assert_eq!(audience_path("/q1/"), "q1");
    }

    #[test]
    fn audience_path_drops_the_query_of_a_signed_request_url() {
        // The JS administration client signs the whole request URL, lower-cased.
        assert_eq!(
            audience_path("https://localhost:5451/jq1?api-version=2021-05"),
            "jq1"
        );
        assert_eq!(
            audience_path("https://localhost:5451/$resources/queues/?api-version=2021-05&%24top=1"),
            "$resources/queues"
        );
        assert_eq!(audience_path("https://localhost:5451?x=1"), "");
    }

    #[test]
    fn covers_matches_whole_segments_case_insensitively() {
        let claims = Claims {
            audience: "Q1".to_owned(),
            key_name: "k".to_owned(),
            rights: Rights::ALL,
            expires_at: NOW,
        };
        assert!(claims.covers("q1"));
        assert!(claims.covers("q1/$DeadLetterQueue"));
        assert!(claims.covers("q1/$management"));
        assert!(claims.covers("/q1/"));
        assert!(!claims.covers("q10"));
        assert!(!claims.covers("q"));
        assert!(!claims.covers(""));
        assert!(path_covers(
            "t1/Subscriptions/s1",
            "T1/subscriptions/S1/$DeadLetterQueue"
        ));
        assert!(!path_covers("t1/Subscriptions/s1", "t1/Subscriptions/s2"));
        // Multi-byte text must not panic on a char boundary.
        assert!(!path_covers("ab", "é"));
    }

    #[test]
    fn policy_debug_hides_the_key() {
        let text = format!("{:?}", root_policy());
        assert!(!text.contains(DEFAULT_KEY_VALUE));
        assert!(text.contains(DEFAULT_KEY_NAME));
    }
}

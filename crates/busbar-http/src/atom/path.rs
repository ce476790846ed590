//! Which resource an administration request names. The path is split on literal `/` before
//! each segment is percent-decoded, so a name holding `/` (sent as `%2F`) stays one
//! segment; `$Resources`, `Subscriptions` and `Rules` match in any case, and a trailing
//! slash is ignored.

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Namespace,
    Queues,
    Topics,
    /// A queue or a topic: they share one set of names.
    Entity(String),
    Subscriptions {
        topic: String,
    },
    Subscription {
        topic: String,
        name: String,
    },
    Rules {
        topic: String,
        subscription: String,
    },
    Rule {
        topic: String,
        subscription: String,
        name: String,
    },
}

impl Target {
    /// The entity path an authorization token must cover (`""`: the namespace).
    pub fn authorization_path(&self) -> String {
        match self {
            Target::Namespace | Target::Queues | Target::Topics => String::new(),
            Target::Entity(name) => name.clone(),
            Target::Subscriptions { topic } => topic.clone(),
            Target::Subscription { topic, name } => format!("{topic}/Subscriptions/{name}"),
            Target::Rules {
                topic,
                subscription,
            }
            | Target::Rule {
                topic,
                subscription,
                ..
            } => format!("{topic}/Subscriptions/{subscription}"),
        }
    }
}

/// Reads the path part of a request URI.
pub fn parse(uri_path: &str) -> Result<Target, String> {
    let trimmed = uri_path.strip_prefix('/').unwrap_or(uri_path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments = trimmed
        .split('/')
        .map(|raw| {
            percent_decode_str(raw)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| format!("The path segment '{raw}' is not UTF-8 once decoded."))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let is = |segment: &String, word: &str| segment.eq_ignore_ascii_case(word);
    let unknown = || format!("The path '{uri_path}' names no Service Bus resource.");
    let owned = |s: &String| s.clone();
    match segments.as_slice() {
        [one] if one.is_empty() => Err(unknown()),
        [one] if is(one, "$namespaceinfo") => Ok(Target::Namespace),
        [resources, kind] if is(resources, "$Resources") && is(kind, "queues") => {
            Ok(Target::Queues)
        }
        [resources, kind] if is(resources, "$Resources") && is(kind, "topics") => {
            Ok(Target::Topics)
        }
        [name] => Ok(Target::Entity(owned(name))),
        [topic, subs] if is(subs, "subscriptions") => Ok(Target::Subscriptions {
            topic: owned(topic),
        }),
        [topic, subs, name] if is(subs, "subscriptions") => Ok(Target::Subscription {
            topic: owned(topic),
            name: owned(name),
        }),
        [topic, subs, subscription, rules] if is(subs, "subscriptions") && is(rules, "rules") => {
            Ok(Target::Rules {
                topic: owned(topic),
                subscription: owned(subscription),
            })
        }
        [topic, subs, subscription, rules, name]
            if is(subs, "subscriptions") && is(rules, "rules") =>
        {
            Ok(Target::Rule {
                topic: owned(topic),
                subscription: owned(subscription),
                name: owned(name),
            })
        }
        _ => Err(unknown()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes_what_the_sdks_send() {
        let s = |x: &str| x.to_owned();
        for (path, target) in [
            ("/$namespaceinfo", Target::Namespace),
            ("/$Resources/queues", Target::Queues),
            ("/$Resources/Queues/", Target::Queues),
            ("/%24Resources/topics", Target::Topics),
            ("/q1", Target::Entity(s("q1"))),
            ("/a%2Fb", Target::Entity(s("a/b"))),
            ("/x%20y%C3%BC", Target::Entity(s("x yü"))),
            ("/health", Target::Entity(s("health"))),
            (
                "/t1/subscriptions",
                Target::Subscriptions { topic: s("t1") },
            ),
            (
                "/t1/Subscriptions/",
                Target::Subscriptions { topic: s("t1") },
            ),
            (
                "/t1/Subscriptions/s1",
                Target::Subscription {
                    topic: s("t1"),
                    name: s("s1"),
                },
            ),
            (
                "/t1/Subscriptions/s1/Rules/",
                Target::Rules {
                    topic: s("t1"),
                    subscription: s("s1"),
                },
            ),
            (
                "/t1/subscriptions/s1/rules/%24Default",
                Target::Rule {
                    topic: s("t1"),
                    subscription: s("s1"),
                    name: s("$Default"),
                },
            ),
        ] {
            assert_eq!(parse(path).unwrap(), target, "{path}");
        }
        for bad in ["/", "/a/b", "/t/subscriptions/s/x", "/t/x/s", "/%FF"] {
            assert!(parse(bad).is_err(), "{bad} was routed");
        }
    }
}

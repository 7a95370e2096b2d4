//! `http:` of a plugin entry in the bot YAML: the hosts a script plugin may reach with `http.get` and
//! `http.post` (docs/scripts.md). Nothing is allowed unless listed.
//!
//! ```yaml
//! plugins:
//!   - name: weather
//!     http:
//!       allow: ["api.example.com", "*.example.org", "127.0.0.1:8080"]
//! ```
//!
//! A pattern is a host name or an IP address, optionally `*.` before a name (any name below it, not the name
//! itself) and `:port` after (that port only; without it, any port). Names compare without case.

use serde::{Deserialize, Serialize};

/// `http:` of a plugin entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpAllow {
    /// `allow`: host patterns.
    pub allow: Vec<String>,
}

/// One pattern of `http.allow`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// Lowercase host, without `*.`.
    host: String,
    /// `*.` before the host.
    below: bool,
    port: Option<u16>,
}

/// Parses a pattern: `[*.]host[:port]`, where host is a name of letters, digits, `-` and `.`, an IPv4 address,
/// or an IPv6 address in brackets.
fn parse(pattern: &str) -> Result<Pattern, String> {
    let bad = |why: &str| Err(format!("invalid host pattern {pattern:?}: {why} (expected host, *.host or host:port)"));
    let (host, port) = if let Some(rest) = pattern.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else { return bad("an unclosed [") };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return bad("not an IPv6 address");
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').unwrap_or("x")),
        };
        (format!("[{}]", inside.to_ascii_lowercase()), port)
    } else {
        match pattern.rsplit_once(':') {
            Some((host, port)) => (host.to_ascii_lowercase(), Some(port)),
            None => (pattern.to_ascii_lowercase(), None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return bad("the port must be a number from 1 to 65535"),
        },
    };
    let (host, below) = match host.strip_prefix("*.") {
        Some(host) => (host.to_owned(), true),
        None => (host, false),
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && (host.starts_with('[')
            || host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
            }));
    if !name_ok {
        return bad("a host is labels of letters, digits and -, joined by dots");
    }
    Ok(Pattern { host, below, port })
}

/// Checks one pattern of `http.allow` (the rule `validate.rs` applies).
pub(super) fn check_pattern(pattern: &str) -> Result<(), String> {
    parse(pattern).map(drop)
}

impl HttpAllow {
    /// Whether `host` (as a URL writes it, IPv6 in brackets) on `port` is allowed. Invalid patterns (refused by
    /// the config check) allow nothing.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.allow.iter().filter_map(|p| parse(p).ok()).any(|p| {
            let host_ok = if p.below {
                host.strip_suffix(&p.host).is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
            } else {
                host == p.host
            };
            host_ok && p.port.is_none_or(|allowed| allowed == port)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_allow_their_hosts_only() {
        let allow = HttpAllow {
            allow: ["api.example.com", "*.example.org", "127.0.0.1:8080", "[::1]"].map(str::to_owned).to_vec(),
        };
        assert!(allow.allows("api.example.com", 443));
        assert!(allow.allows("API.Example.COM", 80));
        assert!(!allow.allows("example.com", 443));
        assert!(!allow.allows("api.example.com.evil.net", 443));
        assert!(allow.allows("a.b.example.org", 443));
        assert!(!allow.allows("example.org", 443), "*. is below the name only");
        assert!(!allow.allows("badexample.org", 443));
        assert!(allow.allows("127.0.0.1", 8080));
        assert!(!allow.allows("127.0.0.1", 8081));
        assert!(allow.allows("[::1]", 1));
        assert!(!HttpAllow::default().allows("api.example.com", 443), "nothing unless listed");
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for good in ["example.com", "*.example.com", "localhost:8080", "[::1]:443", "10.0.0.1"] {
            check_pattern(good).unwrap();
        }
        for (bad, why) in [
            ("", "labels"),
            ("http://example.com", "port"),
            ("example.com/path", "labels"),
            ("exa mple.com", "labels"),
            ("*", "labels"),
            ("example.com:0", "port"),
            ("example..com", "labels"),
            ("[zz]", "IPv6"),
        ] {
            let error = check_pattern(bad).unwrap_err();
            assert!(error.contains(why) && error.contains("invalid host pattern"), "{bad}: {error}");
        }
    }
}

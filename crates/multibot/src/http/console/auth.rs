//! Who may use the console: [`Keys`] signs session cookies and CSRF tokens with a key derived from
//! `CONSOLE_TOKEN`, so sessions survive a restart and hold on every replica, and a new token ends them all.
//! [`Logins`] throttles failed logins per client address.
//!
//! A session cookie is `<issued>.<nonce>.<mac>`: when it was issued (Unix seconds), 16 random bytes, and the HMAC
//! of both. Its CSRF token is the HMAC of the nonce under another label, so a page can embed it and a forged form
//! from another site cannot know it.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write,
    net::IpAddr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use parking_lot::Mutex;
use ring::hmac;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub(super) const COOKIE: &str = "multibot_console";
/// How long a session lasts.
pub(super) const SESSION: Duration = Duration::from_secs(12 * 3600);
/// Failed logins one address may make in [`LOGIN_WINDOW`].
const LOGIN_FAILURES: u32 = 5;
/// The window failed logins are counted in.
const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered for throttling; past it, those whose window is over are forgotten, and if none is,
/// new addresses share one budget.
const LOGIN_ADDRESSES: usize = 4096;
/// Logged-out sessions remembered until they expire anyway.
const REVOKED: usize = 10_000;

/// The token and the keys made from it.
pub(super) struct Keys {
    token: Vec<u8>,
    key: hmac::Key,
    /// Nonces of sessions that logged out.
    revoked: Mutex<HashSet<String>>,
}

/// A valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    /// Its random part, which names it in the audit log (not a secret: the MAC is).
    pub(super) nonce: String,
    issued: u64,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

impl Keys {
    /// Keys for `token` (`CONSOLE_TOKEN`).
    pub(super) fn new(token: &str) -> Keys {
        let seed = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
        let derived = hmac::sign(&seed, b"multibot console session key v1");
        Keys {
            token: token.as_bytes().to_vec(),
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            revoked: Mutex::default(),
        }
    }

    /// Whether `presented` is the token, compared in constant time.
    pub(super) fn token_matches(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(&self.token))
    }

    fn mac(&self, label: &str, text: &str) -> String {
        hex(hmac::sign(&self.key, format!("{label}:{text}").as_bytes()).as_ref())
    }

    /// A new session's cookie value.
    pub(super) fn issue(&self) -> anyhow::Result<String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers: {e}"))?;
        let body = format!("{}.{}", unix_now(), hex(&bytes));
        let mac = self.mac("session", &body);
        Ok(format!("{body}.{mac}"))
    }

    /// The session `cookie` names, if it is ours, unexpired and not logged out.
    pub(super) fn session(&self, cookie: &str) -> Option<Session> {
        let (body, mac) = cookie.rsplit_once('.')?;
        let (issued, nonce) = body.split_once('.')?;
        if !bool::from(self.mac("session", body).as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        let issued: u64 = issued.parse().ok()?;
        let now = unix_now();
        if issued > now + 60 || now.saturating_sub(issued) > SESSION.as_secs() {
            return None;
        }
        if self.revoked.lock().contains(nonce) {
            return None;
        }
        Some(Session { nonce: nonce.to_owned(), issued })
    }

    /// Whether `session` has neither expired nor logged out since it was checked.
    pub(super) fn still_valid(&self, session: &Session) -> bool {
        unix_now().saturating_sub(session.issued) <= SESSION.as_secs() && !self.revoked.lock().contains(&session.nonce)
    }

    /// The CSRF token of `session`'s forms.
    pub(super) fn csrf(&self, session: &Session) -> String {
        self.mac("csrf", &session.nonce)
    }

    /// Whether `presented` is `session`'s CSRF token.
    pub(super) fn csrf_matches(&self, session: &Session, presented: &str) -> bool {
        bool::from(self.csrf(session).as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Ends `session`: its cookie is refused from now on, in this process.
    pub(super) fn revoke(&self, session: &Session) {
        let mut revoked = self.revoked.lock();
        if revoked.len() >= REVOKED {
            // The oldest cannot be told apart from here; the sessions expire within SESSION anyway.
            revoked.clear();
        }
        revoked.insert(session.nonce.clone());
    }
}

/// Failed logins per client address, in a fixed window.
#[derive(Default)]
pub(super) struct Logins {
    failures: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
}

impl Logins {
    /// Whether `from` may try to log in now.
    pub(super) fn allowed(&self, from: Option<IpAddr>) -> bool {
        let failures = self.failures.lock();
        let key = self.key(&failures, from);
        failures.get(&key).is_none_or(|(began, n)| began.elapsed() >= LOGIN_WINDOW || *n < LOGIN_FAILURES)
    }

    /// Counts a failed login from `from`.
    pub(super) fn failed(&self, from: Option<IpAddr>) {
        let mut failures = self.failures.lock();
        if failures.len() >= LOGIN_ADDRESSES {
            failures.retain(|_, (began, _)| began.elapsed() < LOGIN_WINDOW);
        }
        let key = self.key(&failures, from);
        let (began, n) = failures.entry(key).or_insert((Instant::now(), 0));
        if began.elapsed() >= LOGIN_WINDOW {
            (*began, *n) = (Instant::now(), 0);
        }
        *n += 1;
    }

    /// The address itself, or the shared budget (`None`) when the table is full of live windows.
    fn key(&self, failures: &HashMap<Option<IpAddr>, (Instant, u32)>, from: Option<IpAddr>) -> Option<IpAddr> {
        if failures.contains_key(&from) || failures.len() < LOGIN_ADDRESSES { from } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_until_it_is_forged_expired_or_revoked() {
        let keys = Keys::new("a-console-token-of-length");
        let cookie = keys.issue().unwrap();
        let session = keys.session(&cookie).unwrap();
        assert!(keys.csrf_matches(&session, &keys.csrf(&session)));
        // Bad input: another key's cookie, a changed MAC, a changed time, garbage, an old cookie, a wrong CSRF.
        assert_eq!(Keys::new("another-token-entirely").session(&cookie), None);
        let mut forged = cookie.clone();
        forged.replace_range(cookie.len() - 1.., if cookie.ends_with('0') { "1" } else { "0" });
        assert_eq!(keys.session(&forged), None);
        let (_, rest) = cookie.split_once('.').unwrap();
        assert_eq!(keys.session(&format!("1.{rest}")), None);
        for garbage in ["", ".", "..", "x.y.z", "1.2"] {
            assert_eq!(keys.session(garbage), None, "{garbage:?}");
        }
        let old = format!("1000.{}", session.nonce);
        assert_eq!(keys.session(&format!("{old}.{}", keys.mac("session", &old))), None);
        assert!(!keys.csrf_matches(&session, "0000"));
        assert!(!Keys::new("another-token-entirely").csrf_matches(&session, &keys.csrf(&session)));
        keys.revoke(&session);
        assert_eq!(keys.session(&cookie), None);
        assert!(keys.session(&keys.issue().unwrap()).is_some());
    }

    #[test]
    fn failed_logins_are_throttled_per_address() {
        let logins = Logins::default();
        let (a, b) = (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()));
        for _ in 0..LOGIN_FAILURES {
            assert!(logins.allowed(a));
            logins.failed(a);
        }
        assert!(!logins.allowed(a));
        assert!(logins.allowed(b));
        assert!(Keys::new("t0ken-of-some-length").token_matches("t0ken-of-some-length"));
        assert!(!Keys::new("t0ken-of-some-length").token_matches("t0ken-of-some-lengt"));
    }
}

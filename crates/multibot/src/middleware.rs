//! Middleware: what every update passes before the router. [`access`] drops blocked and not-allowed users;
//! [`rate_limit`] limits each user's updates per bot with a token bucket.

pub mod access;
pub mod rate_limit;

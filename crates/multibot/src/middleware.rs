//! What runs on every update before the router.
//!
//! - `users`: [`track_user`] records who interacts with each bot, through the background
//!   [`Recorder`](crate::storage::Recorder), without a database round trip on the reply path.
//! - [`access`] drops blocked and not-allowed users; [`rate_limit`] limits each user's updates per bot with a
//!   token bucket.

pub mod access;
pub mod rate_limit;
mod users;

pub use users::track_user;

//! What runs on every update before the router.
//!
//! - `users`: [`track_user`] records who interacts with each bot, through the background
//!   [`Recorder`](crate::storage::Recorder), without a database round trip on the reply path.

mod users;

pub use users::track_user;

//! Integration tests: the real application (or the real binary, for signals) against the Bot API emulator.

mod cli;
mod conversation;
mod failures;
mod helpers;
mod http;
mod limits;
mod process;
mod reload;
mod runtime;
mod webhook;

//! Integration tests: the real application (or the real binary, for signals) against the Bot API emulator.

mod cli;
mod conversation;
mod db;
mod failures;
mod helpers;
mod process;
mod runtime;
mod storage;

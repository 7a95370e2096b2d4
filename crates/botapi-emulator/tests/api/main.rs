//! Integration tests of the emulator over real HTTP on loopback. One binary; `helpers` starts an emulator per
//! test and speaks the Bot API in every encoding.

mod albums;
mod answers;
mod control;
mod faults;
mod files;
mod garbage;
mod helpers;
mod members;
mod moderation;
mod playground;
mod polling;
mod sending;
mod teloxide;
mod updates;
mod webhook;

//! Integration tests: the real application (or the real binary, for signals) against the Bot API emulator, with
//! an SQLite file or a fresh PostgreSQL database on 127.0.0.1:5432 (`db`).

mod admin;
mod api_trouble;
mod botapi;
mod bounds;
mod cli;
mod conversation;
mod db;
mod deploy;
mod docs;
mod durability;
mod failures;
mod files;
mod fsm;
mod helpers;
mod http;
mod inbox;
mod layers;
mod leases;
mod limits;
mod persistence;
mod process;
mod reload;
mod replicas;
mod replicas_load;
mod retention;
mod runtime;
mod script_abuse;
mod script_caps_api;
mod script_caps_fleet;
mod script_caps_sys;
mod scripts;
mod storage;
mod tls;
mod update_types;
mod webhook;

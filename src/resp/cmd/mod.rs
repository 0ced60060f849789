//! The commands, one file each (mini-redis style): `parse` reads the arguments, `apply` runs
//! the command against the store and the connection, and the reply comes back as a [`Reply`].
//!
//! `table.rs` is the one list of commands: name, arity, flags, key positions and
//! summary, from which the [`Command`] enum, its dispatch, `COMMAND` and the pre-AUTH check
//! all follow. A new command is a file here, its `mod` line below, and one row in that table.
//!
//! [`Reply`]: crate::resp::Reply

mod args;
mod table;

mod append;
mod auth;
mod client;
mod command;
mod config;
mod dbsize;
mod del;
mod delex;
mod digest;
mod dynamo;
mod echo;
mod exists;
mod fault;
mod flushall;
mod get;
mod getdel;
mod getset;
mod health;
mod hello;
mod incr;
mod info;
mod keys;
mod members;
mod mget;
mod mset;
mod ping;
mod quit;
mod scan;
mod select;
mod set;
mod setnx;
mod snapshot;
mod strlen;
mod vget;
mod vset;

pub use args::{Args, lower};
pub use set::Set;
pub use table::{COMMANDS, Command, Ctx, Spec, lookup};

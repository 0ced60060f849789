//! The command table: the one list a command is added to. Each row declares a command once —
//! its name, the variant and type that parse and run it, and what `COMMAND INFO` shows
//! (arity, flags, key positions, a summary) — and `commands!` turns the rows into
//! [`COMMANDS`] (which COMMAND and the pre-AUTH check read), the [`Command`] enum, and
//! its parse and apply dispatch.
//!
//! Arity is checked from the table before a command parses its arguments, so every command
//! answers a wrong argument count with Redis' own text, as it does an unknown name.

use bytes::Bytes;

use super::{Args, lower};
use crate::errinput;
use crate::error::{Error, Result};
use crate::resp::auth::NO_AUTH;
use crate::resp::{Reply, ServerState, Session};
use crate::store::Store;

/// What a command may touch while it runs.
pub struct Ctx<'a> {
    /// The keyspace, whichever mode keeps it.
    pub store: &'a dyn Store,
    /// The connection the command came on.
    pub session: &'a mut Session,
    /// What every connection shares.
    pub server: &'a ServerState,
}

/// One row of the command table (the fields of Redis' `COMMAND INFO`).
#[derive(Debug)]
pub struct Spec {
    /// The lowercase name.
    pub name: &'static str,
    /// Argument count including the name; negative means "at least".
    pub arity: i64,
    /// Redis' command flags; [`NO_AUTH`] lets the command run before AUTH.
    pub flags: &'static [&'static str],
    /// The position of the first key argument (0: no keys).
    pub first_key: i64,
    /// The position of the last key argument (-1: the last argument).
    pub last_key: i64,
    /// The distance between key arguments.
    pub step: i64,
    /// One line for `COMMAND DOCS`.
    pub summary: &'static str,
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    summary: &'static str,
) -> Spec {
    Spec { name, arity, flags, first_key: keys.0, last_key: keys.1, step: keys.2, summary }
}

/// Flags of the plain reads.
const READ: &[&str] = &["readonly", "fast"];
/// Flags of the writes that may grow the keyspace.
const WRITE: &[&str] = &["write", "denyoom"];
/// Flags of the commands a connection may send before it authenticates.
const PRE_AUTH: &[&str] = &["fast", NO_AUTH];
/// Key positions (first, last, step) of a command without keys...
const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
/// ...of one whose first argument is its one key...
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
/// ...of one whose every argument is a key...
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);
/// ...and of one whose arguments are key-value pairs (MSET).
const PAIRS: (i64, i64, i64) = (1, -1, 2);

/// Generates the table and the dispatch from rows of
/// `"name" => Variant(module::Type), arity, flags, keys, "summary";`.
///
/// `module` is the command's file in `cmd/`, and `Type` has `parse(&mut Args) -> Result<Self>`
/// and `async apply(self, &mut Ctx) -> Result<Reply>`. Several names may share a type (the
/// counters, the flushes); each still gets its own variant, and `parse` tells them apart by
/// [`Args::name`].
macro_rules! commands {
    ($($name:literal => $variant:ident($module:ident::$ty:ident), $arity:expr, $flags:expr, $keys:expr,
        $summary:literal;)*) => {
        /// Every command valthree knows, in `COMMAND LIST` order.
        pub const COMMANDS: &[Spec] = &[$(spec($name, $arity, $flags, $keys, $summary)),*];

        /// A row of [`COMMANDS`], by position: made from the same rows, in the same order.
        #[derive(Debug, Clone, Copy)]
        #[repr(usize)]
        enum Row {
            $($variant),*
        }

        impl Row {
            /// The row of the command called `name` (lowercase).
            fn of(name: &str) -> Option<Row> {
                match name {
                    $($name => Some(Row::$variant),)*
                    _ => None,
                }
            }

            fn spec(self) -> &'static Spec {
                &COMMANDS[self as usize]
            }
        }

        /// A parsed command, ready to run.
        #[derive(Debug)]
        pub enum Command {
            $(
                #[doc = concat!("`", $name, "`: ", $summary)]
                $variant(super::$module::$ty),
            )*
        }

        impl Command {
            /// The command's row of the table.
            pub fn spec(&self) -> &'static Spec {
                match self {
                    $(Command::$variant(_) => Row::$variant.spec(),)*
                }
            }

            fn parse_row(row: Row, args: &mut Args) -> Result<Command> {
                Ok(match row {
                    $(Row::$variant => Command::$variant(super::$module::$ty::parse(args)?),)*
                })
            }

            async fn run(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
                match self {
                    $(Command::$variant(c) => c.apply(ctx).await,)*
                }
            }
        }
    };
}

commands! {
    "append"           => Append(append::Append),        3, WRITE,       ONE_KEY,
        "Appends a string to the value of a key. Creates the key if it doesn't exist.";
    "auth"             => Auth(auth::Auth),             -2, PRE_AUTH,    NO_KEYS,
        "Authenticates the connection.";
    "client"           => Client(client::Client),       -2, &["slow"],   NO_KEYS,
        "A container for client connection commands.";
    "command"          => Command(command::CommandCmd), -1, &["slow"],   NO_KEYS,
        "Returns detailed information about all commands.";
    "config"           => Config(config::Config),       -2, &["admin", "slow"], NO_KEYS,
        "CONFIG GET parameter...: maxclients, proto-max-bulk-len, timeout (valthree's settings are its flags).";
    "dbsize"           => Dbsize(dbsize::Dbsize),        1, READ,        NO_KEYS,
        "Returns the number of keys in the database.";
    "decr"             => Decr(incr::Incr),              2, WRITE,       ONE_KEY,
        "Decrements the integer value of a key by one.";
    "decrby"           => Decrby(incr::Incr),            3, WRITE,       ONE_KEY,
        "Decrements a number from the integer value of a key.";
    "del"              => Del(del::Del),                -2, &["write"],  ALL_KEYS,
        "Deletes one or more keys.";
    "delex"            => Delex(delex::Delex),          -2, &["write", "fast"], ONE_KEY,
        "Deletes a key if its value (IFEQ/IFNE) or digest (IFDEQ/IFDNE) passes; replies 1 or 0 (Redis 8.4).";
    "delifeq"          => Delifeq(delex::Delex),         3, &["write", "fast"], ONE_KEY,
        "Deletes a key if its value equals the one given; replies 1 or 0 (Valkey 9.0).";
    "digest"           => Digest(digest::Digest),        2, READ,        ONE_KEY,
        "Returns the XXH3 hash digest of a string value as 16 hexadecimal digits (Redis 8.4).";
    "echo"             => Echo(echo::Echo),              2, &["fast"],   NO_KEYS,
        "Returns the given string.";
    "exists"           => Exists(exists::Exists),       -2, READ,        ALL_KEYS,
        "Determines whether one or more keys exist.";
    "flushall"         => Flushall(flushall::Flushall), -1, &["write"],  NO_KEYS,
        "Removes all keys.";
    "flushdb"          => Flushdb(flushall::Flushall),  -1, &["write"],  NO_KEYS,
        "Removes all keys from the current database.";
    "get"              => Get(get::Get),                 2, READ,        ONE_KEY,
        "Returns the string value of a key.";
    "getdel"           => Getdel(getdel::Getdel),        2, &["write", "fast"], ONE_KEY,
        "Returns the string value of a key after deleting the key.";
    "getset"           => Getset(getset::Getset),        3, &["write", "denyoom", "fast"], ONE_KEY,
        "Returns the previous string value of a key after setting it to a new value.";
    "hello"            => Hello(hello::Hello),          -1, PRE_AUTH,    NO_KEYS,
        "Handshakes with the server.";
    "incr"             => Incr(incr::Incr),              2, WRITE,       ONE_KEY,
        "Increments the integer value of a key by one.";
    "incrby"           => Incrby(incr::Incr),            3, WRITE,       ONE_KEY,
        "Increments the integer value of a key by a number.";
    "info"             => Info(info::Info),             -1, &["slow"],   NO_KEYS,
        "Returns information and statistics about the server.";
    "keys"             => Keys(keys::Keys),              2, &["readonly"], NO_KEYS,
        "Returns all key names that match a pattern.";
    "mget"             => Mget(mget::Mget),             -2, READ,        ALL_KEYS,
        "Atomically returns the string values of one or more keys.";
    "mset"             => Mset(mset::Mset),             -3, WRITE,       PAIRS,
        "Atomically creates or modifies the string values of one or more keys (not in paxos mode).";
    "msetnx"           => Msetnx(mset::Mset),           -3, WRITE,       PAIRS,
        "Atomically sets the values of keys only when none of them exists (not in paxos mode).";
    "ping"             => Ping(ping::Ping),             -1, &["fast"],   NO_KEYS,
        "Returns the server's liveliness response.";
    "quit"             => Quit(quit::Quit),             -1, PRE_AUTH,    NO_KEYS,
        "Closes the connection.";
    "scan"             => Scan(scan::Scan),             -2, &["readonly"], NO_KEYS,
        "Iterates over the key names in the database (MATCH, COUNT, TYPE).";
    "select"           => Select(select::Select),        2, &["fast"],   NO_KEYS,
        "Changes the selected database (only 0 exists).";
    "set"              => Set(set::Set),                -3, WRITE,       ONE_KEY,
        "Sets the string value of a key. NX, XX, IFEQ, IFNE, IFDEQ, IFDNE and GET are supported; expiry is not.";
    "setnx"            => Setnx(setnx::Setnx),           3, &["write", "denyoom", "fast"], ONE_KEY,
        "Set the string value of a key only when the key doesn't exist.";
    "strlen"           => Strlen(strlen::Strlen),        2, READ,        ONE_KEY,
        "Returns the length of a string value.";
    "vdel"             => Vdel(vset::Vset),             -3, &["write"],  ONE_KEY,
        "dynamo mode: deletes a key under a context (VDEL key context [W n]); replies [context, dot].";
    "vget"             => Vget(vget::Vget),             -2, READ,        ONE_KEY,
        "dynamo mode: returns a key's context and every sibling (VGET key [R n] [WITHDOTS]).";
    "vset"             => Vset(vset::Vset),             -4, WRITE,       ONE_KEY,
        "dynamo mode: writes a value under a context (VSET key value context [W n]); replies [context, dot].";
    "dynamo.members"   => DynamoMembers(dynamo::DynamoInfo), 1, &["readonly"], NO_KEYS,
        "dynamo mode: every member's address and health (ALIVE, SUSPECT, DEAD) as this node sees it.";
    "dynamo.local"     => DynamoLocal(dynamo::DynamoInfo), -2, &["readonly"], ONE_KEY,
        "dynamo mode: this node's own replica of a key, read without a quorum (DYNAMO.LOCAL key [WITHDOTS]).";
    "dynamo.digest"    => DynamoDigest(dynamo::DynamoInfo), -1, &["readonly"], NO_KEYS,
        "dynamo mode: the roots of this node's anti-entropy trees, per partition (DYNAMO.DIGEST [partition]).";
    "dynamo.ring"      => DynamoRing(dynamo::DynamoInfo), -1, &["readonly"], NO_KEYS,
        "dynamo mode: the ring's partitions, or a key's partition and preference list (DYNAMO.RING [key]).";
    "valthree.members" => Members(members::Members),    -3, &["admin"],  NO_KEYS,
        "Shows or changes the cluster's membership (needs --admin-token).";
    "valthree.snapshot" => Snapshot(snapshot::Snapshot), -2, &["readonly"], NO_KEYS,
        "s3 and raft mode: pages through the keyspace at one point in time (BEGIN | NEXT count | END), for backups.";
    "valthree.health"  => Health(health::Health),        1, &["readonly"], NO_KEYS,
        "Answers OK only if a linearizable read through this node works (a readiness check).";
    "valthree.fault"   => Fault(fault::Fault),          -3, &["admin"],  NO_KEYS,
        "Test only: isolates this node from peers, or heals it (needs --admin-token).";
}

/// Looks a command up by its lowercase name.
pub fn lookup(name: &str) -> Option<&'static Spec> {
    Row::of(name).map(Row::spec)
}

/// Redis' reply to an unknown command, quoting the first arguments: the name cut to 128
/// bytes, and arguments quoted while the quoted text is under 128 bytes.
fn unknown_command(request: &[Bytes]) -> Error {
    let cut = |b: &[u8], n: usize| String::from_utf8_lossy(&b[..b.len().min(n)]).into_owned();
    let name = cut(&request[0], 128);
    let mut args = String::new();
    for arg in &request[1..] {
        if args.len() >= 128 {
            break;
        }
        args.push_str(&format!("'{}' ", cut(arg, 128 - args.len())));
    }
    errinput!("unknown command '{name}', with args beginning with: {args}")
}

impl Command {
    /// Checks the name and arity against the table, then parses a request (name first).
    pub fn parse(request: Vec<Bytes>) -> Result<Command> {
        let Some(row) = Row::of(&lower(&request[0])) else {
            return Err(unknown_command(&request));
        };
        let spec = row.spec();
        let argc = request.len() as i64;
        if (spec.arity > 0 && argc != spec.arity) || (spec.arity < 0 && argc < -spec.arity) {
            return Err(errinput!("wrong number of arguments for '{}' command", spec.name));
        }
        let mut rest = request.into_iter();
        rest.next();
        Command::parse_row(row, &mut Args::new(spec.name, rest))
    }

    /// Runs the command; every failure becomes an error reply. Counted in the node's
    /// metrics: a call, its time, and its error's kind if it failed.
    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Reply {
        let name = self.spec().name;
        let started = std::time::Instant::now();
        let result = self.run(ctx).await;
        ctx.server.metrics.command_done(name, started.elapsed(), result.as_ref().err().map(Error::kind));
        result.unwrap_or_else(Reply::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::auth::allowed_without_auth;

    fn request(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect()
    }

    fn parse_error(parts: &[&str]) -> String {
        Command::parse(request(parts)).unwrap_err().to_resp()
    }

    #[test]
    fn every_row_is_found_by_its_own_name() {
        for spec in COMMANDS {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            let found = lookup(spec.name).unwrap();
            assert_eq!((found.name, found.arity, found.summary), (spec.name, spec.arity, spec.summary));
        }
        assert_eq!(COMMANDS.len(), 45);
    }

    #[test]
    fn a_parsed_command_knows_its_row_whatever_the_case_of_its_name() {
        for (parts, name) in [(&["DECRBY", "k", "2"][..], "decrby"), (&["FlushDB"], "flushdb"), (&["quit"], "quit")] {
            assert_eq!(Command::parse(request(parts)).unwrap().spec().name, name);
        }
    }

    #[test]
    fn only_auth_hello_and_quit_run_before_auth() {
        let open: Vec<_> = COMMANDS.iter().filter(|s| allowed_without_auth(s.flags)).map(|s| s.name).collect();
        assert_eq!(open, ["auth", "hello", "quit"]);
    }

    #[test]
    fn unknown_names_and_wrong_arity_get_redis_texts() {
        assert_eq!(parse_error(&["NOPE", "a", "b"]), "ERR unknown command 'NOPE', with args beginning with: 'a' 'b' ");
        assert_eq!(parse_error(&["GET"]), "ERR wrong number of arguments for 'get' command");
        assert_eq!(parse_error(&["get", "a", "b"]), "ERR wrong number of arguments for 'get' command");
        assert_eq!(parse_error(&["SET", "k"]), "ERR wrong number of arguments for 'set' command");
    }
}

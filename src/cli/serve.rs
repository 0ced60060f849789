//! `valthree serve`: the server, in one of the consistency modes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tracing_subscriber::EnvFilter;

use crate::error::{Error, Result};
use crate::mode::dynamo::DynamoArgs;
use crate::mode::paxos::PaxosArgs;
use crate::mode::raft::RaftArgs;
use crate::mode::s3::S3Args;
use crate::mode::{ModeConfig, ModeName};
use crate::node::{Faults, NodeArgs, parse_size};
use crate::peer::{ClusterSecret, MIN_SECRET_LEN};
use crate::resp::{OutputLimit, ServerConfig};

/// Arguments of `valthree serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// How the cluster keeps itself consistent.
    #[arg(long, value_enum, default_value = "s3")]
    pub mode: ModeName,
    /// Address to serve the Redis protocol on.
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub addr: String,
    /// Directory for this node's data (in s3 mode without --s3-bucket: the embedded object store).
    #[arg(long, default_value = "./valthree-data")]
    pub data_dir: PathBuf,
    /// The log's format on stderr: text, or JSON lines (with `node` and `mode` on each).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log as JSON lines: `--log-format json`, by its older name.
    #[arg(long, hide = true)]
    pub json: bool,
    /// Serve /metrics (Prometheus), /livez and /readyz over HTTP on this address (e.g.
    /// 127.0.0.1:9121); off unless given.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Require clients to AUTH with this password.
    #[arg(long, env = "VALTHREE_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Read the password from this file instead (one line).
    #[arg(long, conflicts_with = "requirepass")]
    pub requirepass_file: Option<PathBuf>,
    /// Refuse connections beyond this many.
    #[arg(long, default_value_t = 10_000)]
    pub maxclients: usize,
    /// Enables the VALTHREE.FAULT admin command (partitions for testing) for holders of this token.
    #[arg(long, env = "VALTHREE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Read the admin token from this file instead (one line).
    #[arg(long, conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// Longest bulk string a client may send (bytes; k, kb, m, mb, g, gb suffixes accepted).
    #[arg(long, default_value = "512mb", value_parser = parse_size)]
    pub proto_max_bulk_len: u64,
    /// The bytes all clients' query and output buffers may hold together. A request or reply
    /// that would pass it first evicts (closes) the clients holding the most unsent output
    /// that received less than 64 KiB of it, or a thirtieth of what waits, in the last 2 s;
    /// failing that, a request gets an error and is closed, a reply is refused (0: no limit).
    #[arg(long, default_value = "1gb", value_parser = parse_size)]
    pub maxmemory_clients: u64,
    /// Redis' normal-class `client-output-buffer-limit`: "HARD SOFT SECONDS" (a leading
    /// `normal` is accepted). A reply that would leave more than HARD bytes unsent is not
    /// queued; a client with more than SOFT bytes unsent that reads none of them for SECONDS
    /// is closed (0: no limit).
    #[arg(long, default_value = "0 8mb 60", value_parser = OutputLimit::parse)]
    pub client_output_buffer_limit: OutputLimit,
    /// Also serve TLS clients on this address (e.g. 127.0.0.1:6380); needs --tls-cert-file and
    /// --tls-key-file.
    #[arg(long, help_heading = "TLS", requires_all = ["tls_cert_file", "tls_key_file"])]
    pub tls_port: Option<String>,
    /// The server's certificate chain (PEM).
    #[arg(long, help_heading = "TLS")]
    pub tls_cert_file: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, help_heading = "TLS")]
    pub tls_key_file: Option<PathBuf>,
    /// Certificates of the CAs that sign client certificates (PEM).
    #[arg(long, help_heading = "TLS")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Whether clients must show a certificate signed by --tls-ca-cert-file (default: yes
    /// when a CA file is given, as in Redis; no otherwise).
    #[arg(long, help_heading = "TLS", value_enum)]
    pub tls_auth_clients: Option<crate::resp::ClientAuth>,
    /// Close a client idle for this many seconds (0: never), as Redis' `timeout`.
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// On SIGTERM or SIGINT: how long to finish the commands in flight and hand over (raft:
    /// leadership; dynamo: pending hints) before the node stops; what is left then is cut off
    /// (commands) or kept on disk (hints), and the last log line says which.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: std::time::Duration,
    /// End a backup's snapshot walk (VALTHREE.SNAPSHOT) idle for this many seconds, letting
    /// go of the keyspace version it holds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_walk_timeout: u64,

    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub paxos: PaxosArgs,
    #[command(flatten)]
    pub raft: RaftArgs,
    #[command(flatten)]
    pub dynamo: DynamoArgs,
}

/// The log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per line (tracing-subscriber's), with `node` and `mode` added.
    Json,
}

/// The log: stderr, text or JSON, filtered by -v or RUST_LOG, repeated warnings and errors
/// limited ([`RepeatLimit`](crate::node::RepeatLimit)).
fn init_logging(format: LogFormat, verbose: u8, node: &str, mode: ModeName) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("valthree={level},warn")));
    // Colour only on a terminal: a log file must stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry =
        tracing_subscriber::registry().with(filter).with(crate::node::RepeatLimit::new(crate::node::REPEAT_WINDOW));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => registry.with(layer.with_ansi(ansi)).init(),
        LogFormat::Json => {
            let mode = format!("{mode:?}").to_lowercase();
            let stamp = Stamped { inner: tracing_subscriber::fmt::format().json(), node: node.into(), mode };
            registry.with(layer.with_ansi(false).event_format(stamp).fmt_fields(JsonFields::new())).init()
        }
    }
}

use tracing_subscriber::fmt::format::JsonFields;

/// tracing-subscriber's JSON lines with the node's name and mode first in each.
struct Stamped<F> {
    inner: F,
    node: String,
    mode: String,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Stamped<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, tracing_subscriber::fmt::format::Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"node\":{:?},\"mode\":{:?},{rest}", self.node, self.mode),
            None => writer.write_str(&line),
        }
    }
}

/// `valthree serve`'s flags as the mode configuration.
fn mode_config(args: &ServeArgs) -> Result<ModeConfig> {
    let from_file =
        args.node.cluster_secret_file.as_deref().map(|f| read_secret_file(f, MIN_SECRET_LEN)).transpose()?;
    let secret = ClusterSecret::configured(from_file.as_deref()).map_err(Error::Config)?;
    Ok(ModeConfig {
        mode: args.mode,
        node: args.node.options(args.data_dir.clone(), secret, args.proto_max_bulk_len).map_err(Error::Config)?,
        s3: args.s3.clone(),
        paxos: args.paxos.clone(),
        raft: args.raft.clone(),
        dynamo: args.dynamo.clone(),
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail on unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Makes an existing data directory its owner's alone (a new one is, by the umask).
fn make_private(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.is_dir()
        && meta.permissions().mode() & 0o077 != 0
        && let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    {
        tracing::warn!("cannot make {} private: {e}", dir.display());
    }
}

/// A secret from its flag (or environment variable), or from its file. A value from the flag
/// or the environment passes the checks a file's does ([`check_secret`]); empty, it means
/// none (Redis' meaning for `requirepass ""`).
fn secret_flag(flag: &str, value: Option<&String>, file: Option<&Path>) -> Result<Option<String>> {
    match file {
        Some(file) => read_secret_file(file, 1).map(Some),
        // Empty means none; a line ending alone is a secret refused as empty, not none.
        None => match value.filter(|v| !v.is_empty()).map(|v| without_line_ending(v)) {
            None => Ok(None),
            Some(value) => {
                let env = format!("VALTHREE_{}", flag.trim_start_matches('-').replace('-', "_").to_uppercase());
                check_secret(value, 1)
                    .map_err(|why| Error::Config(format!("{flag} (or {env}): {why}; refusing to start with it")))?;
                Ok(Some(value.to_string()))
            }
        },
    }
}

/// `value` without one trailing line ending: a variable filled from a file (a Kubernetes
/// secret, `$(cat file)` keeps none, `--from-file` does) often ends in one, as a secret file
/// does, whose line ending is not part of the secret either.
fn without_line_ending(value: &str) -> &str {
    value.strip_suffix('\n').map_or(value, |v| v.strip_suffix('\r').unwrap_or(v))
}

/// The longest secret file read: a secret is one short line.
const MAX_SECRET_FILE: u64 = 64 << 10;

/// How long a secret file that is not a regular file (a named pipe, a device) may take to
/// give its first line before the node gives up. A pipe from process substitution
/// (`--requirepass-file <(pass show valthree)`) has its line at once; a FIFO nobody writes
/// to would otherwise hold the start forever, saying nothing.
pub const SECRET_FILE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why `secret` is refused as a secret, if it is: whitespace alone, a control character
/// (NUL, tab, escape, DEL, ...), a leading UTF-8 byte-order mark, or fewer than `min_len`
/// bytes. Such a value is nearly always a mistake (a file written by the wrong tool, an
/// escape sequence pasted into a variable), which would guard the node with a password
/// nobody types.
fn check_secret(secret: &str, min_len: usize) -> std::result::Result<(), String> {
    if secret.trim().is_empty() {
        return Err("the secret is empty or only whitespace".into());
    }
    if secret.starts_with('\u{feff}') {
        return Err("the secret starts with a UTF-8 byte-order mark (save the file without one)".into());
    }
    if let Some((at, c)) = secret.char_indices().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "the secret holds a control character ({c:?} at byte {at}); a secret is printable text on one line"
        ));
    }
    if secret.len() > crate::resp::MAX_SECRET_LEN {
        return Err(format!("the secret is {} bytes; it may be at most {}", secret.len(), crate::resp::MAX_SECRET_LEN));
    }
    if secret.len() < min_len {
        return Err(format!("the secret is {} bytes; it must be at least {min_len}", secret.len()));
    }
    Ok(())
}

/// The secret in `file`: its first line, without its line ending. Refused, naming the file:
///
/// * an empty file, or a blank first line (only whitespace): starting without the password or
///   token the operator meant to set would let everyone in, and nothing would say so;
/// * a first line [`check_secret`] refuses, and bytes that are not UTF-8;
/// * a regular file longer than [`MAX_SECRET_FILE`], read no further: a flag pointed at the
///   wrong file (a log) would otherwise be read whole into memory; a pipe or device (a FIFO,
///   `<(cmd)`, `/dev/zero`) is read up to its first line ending, or that limit;
/// * a file that is not a regular file and gives no line within [`SECRET_FILE_WAIT`] (the
///   wait is logged once it lasts).
fn read_secret_file(file: &Path, min_len: usize) -> Result<String> {
    read_secret_file_within(file, min_len, SECRET_FILE_WAIT)
}

fn read_secret_file_within(file: &Path, min_len: usize, wait: std::time::Duration) -> Result<String> {
    let refuse = |why: String| Error::Config(format!("{}: {why}; refusing to start with it", file.display()));
    let unreadable = |e: std::io::Error| Error::Config(format!("{}: {e}", file.display()));
    let regular = std::fs::metadata(file).map_err(unreadable)?.is_file();
    let bytes = if regular {
        read_to_line(file, false).map_err(unreadable)?
    } else {
        // Opening a FIFO blocks until a writer opens it, and reading until it writes: on a
        // thread of its own, given up on after the wait (the process then exits).
        let (tx, rx) = std::sync::mpsc::channel();
        let path = file.to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(read_to_line(&path, true));
        });
        let quick = std::time::Duration::from_millis(200).min(wait);
        let read = match rx.recv_timeout(quick) {
            Ok(read) => read,
            Err(_) => {
                tracing::warn!(
                    "waiting for {} (not a regular file: a named pipe or a device) to give the secret; giving up in {}s",
                    file.display(),
                    wait.as_secs()
                );
                rx.recv_timeout(wait.saturating_sub(quick)).map_err(|_| {
                    refuse(format!(
                        "it is not a regular file, and nothing was written to it in {}s (a named pipe nobody writes to?)",
                        wait.as_secs()
                    ))
                })?
            }
        };
        read.map_err(unreadable)?
    };
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(refuse(format!("the file is longer than {MAX_SECRET_FILE} bytes: not a secret file")));
    }
    let text = String::from_utf8(bytes).map_err(|_| refuse("the secret file is not UTF-8 text".into()))?;
    let first = text.lines().next().unwrap_or("");
    if first.trim().is_empty() {
        return Err(refuse("the secret file is empty or its first line is blank".into()));
    }
    check_secret(first, min_len).map_err(refuse)?;
    Ok(first.to_string())
}

/// Up to [`MAX_SECRET_FILE`] + 1 bytes of `file`: all of them, or with `first_line`, up to
/// its first line ending (a pipe's writer need not close it).
fn read_to_line(file: &Path, first_line: bool) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut reader = std::fs::File::open(file)?.take(MAX_SECRET_FILE + 1);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        bytes.extend_from_slice(&chunk[..n]);
        if first_line && chunk[..n].contains(&b'\n') {
            return Ok(bytes);
        }
    }
}

/// Warns about secrets given on the command line, where every local user's `ps` sees them.
fn warn_about_secrets_in_argv() {
    for flag in ["--requirepass", "--admin-token", "--s3-secret-key"] {
        if std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
            tracing::warn!(
                "{flag} on the command line is visible to every local user (ps); use {flag}-file or the environment"
            );
        }
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    make_private(&args.data_dir);
    crate::node::exit_on_writer_panic();
    warn_about_secrets_in_argv();
    // Secrets are read before anything listens: a node that refuses its secret never serves.
    let requirepass = secret_flag("--requirepass", args.requirepass.as_ref(), args.requirepass_file.as_deref())?;
    if args.requirepass.as_ref().is_some_and(String::is_empty) {
        // Redis' meaning, kept; but an empty value is more often a variable that was not set.
        tracing::warn!("--requirepass (or VALTHREE_REQUIREPASS) is empty: no password, every client is let in");
    }
    let admin_token = secret_flag("--admin-token", args.admin_token.as_ref(), args.admin_token_file.as_deref())?;
    let mode_config = mode_config(&args)?;
    // A failed write or fsync ends the process: a supervisor restarts it from what is durable.
    mode_config.node.fs.exit_on_failure();
    let faults = Arc::new(Faults::with_fs(mode_config.node.fs.clone()));
    let config_metrics = mode_config.node.metrics.clone();
    let store = crate::mode::open(&mode_config, faults.clone()).await?;
    // The TLS port is bound first: once the plain port answers, both do.
    let tls = match &args.tls_port {
        None => None,
        Some(addr) => {
            let options = crate::resp::TlsOptions {
                cert_file: args.tls_cert_file.clone().unwrap_or_default(),
                key_file: args.tls_key_file.clone().unwrap_or_default(),
                ca_cert_file: args.tls_ca_cert_file.clone(),
                auth_clients: args.tls_auth_clients.unwrap_or(if args.tls_ca_cert_file.is_some() {
                    crate::resp::ClientAuth::Yes
                } else {
                    crate::resp::ClientAuth::No
                }),
            };
            let acceptor = crate::resp::tls_acceptor(&options).map_err(Error::Config)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Config(format!("cannot listen for TLS clients on {addr}: {e}")))?;
            tracing::info!(addr = %listener.local_addr()?, "serving TLS clients");
            Some((listener, acceptor))
        }
    };
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", args.addr)))?;
    let info = store.describe();
    let backend = info.details.first().map(|(_, v)| v.as_str()).unwrap_or("");
    tracing::info!(
        mode = info.mode,
        addr = %listener.local_addr()?,
        backend,
        version = env!("CARGO_PKG_VERSION"),
        "valthree ready to accept connections"
    );
    let metrics = config_metrics.clone();
    metrics.add_source(Box::new({
        let store = store.clone();
        move |out| crate::metrics::mode::samples(&store.describe(), out)
    }));
    let stop_endpoint = tokio_util::sync::CancellationToken::new();
    let stopping = tokio_util::sync::CancellationToken::new();
    if let Some(addr) = &args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("cannot listen for /metrics on {addr}: {e}")))?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /livez and /readyz");
        let (metrics, store) = (metrics.clone(), store.clone());
        tokio::spawn(crate::metrics::endpoint::serve(
            listener,
            metrics,
            store,
            stopping.clone(),
            stop_endpoint.clone(),
        ));
    }
    let config = ServerConfig {
        requirepass,
        admin_token,
        faults,
        maxclients: args.maxclients,
        proto_max_bulk_len: args.proto_max_bulk_len,
        maxmemory_clients: args.maxmemory_clients,
        output_limit: args.client_output_buffer_limit,
        idle_timeout: (args.timeout > 0).then(|| std::time::Duration::from_secs(args.timeout)),
        drain_timeout: args.shutdown_timeout,
        metrics,
        snapshot_walk_timeout: std::time::Duration::from_secs(args.snapshot_walk_timeout),
    };
    let signalled = async {
        shutdown_signal().await;
        stopping.cancel(); // `/readyz` answers not ready from here on
    };
    let drained = crate::resp::serve(listener, tls, store.clone(), config, signalled).await?;
    stop_endpoint.cancel();
    let signalled_at = std::time::Instant::now() - drained.took;
    // Clients are drained; now the hand-over and the mode's own background work (peers,
    // replication, GC), in what is left of the bound.
    let notes = store.shutdown(args.shutdown_timeout.saturating_sub(drained.took)).await;
    tracing::info!(commands_cut = drained.cut, "stopped: {}", left_behind(&drained, &notes, signalled_at.elapsed()));
    Ok(())
}

/// The last log line's text: what the stop left behind and what it handed over.
fn left_behind(drained: &crate::resp::Drained, notes: &[String], took: std::time::Duration) -> String {
    let cut = match drained.cut {
        0 => "no command in flight was cut off".to_string(),
        1 => "1 command in flight was cut off (its client got -UNCERTAIN or saw the connection close)".to_string(),
        n => format!("{n} commands in flight were cut off (their clients got -UNCERTAIN or saw the connection close)"),
    };
    let mut parts = vec![cut];
    parts.extend(notes.iter().cloned());
    format!("{} ({:.1}s)", parts.join("; "), took.as_secs_f64())
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> ExitCode {
    let format = if args.json { LogFormat::Json } else { args.log_format };
    init_logging(format, args.verbose, &crate::node::peer_name(args.node.node_id), args.mode);
    antithesis_sdk::antithesis_init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Said once, on stderr (a node's log file captures it too).
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve(args: &[&str]) -> ServeArgs {
        let all = ["valthree", "serve"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(all).unwrap().command {
            Command::Serve(args) => *args,
            other => panic!("{other:?}"),
        }
    }

    /// A secret flag pointed at an endless or huge file read it whole: `/dev/zero` took the
    /// node to 3.2 GB before it was killed. Now it reads no more than the limit and refuses.
    #[test]
    fn a_secret_file_past_the_limit_is_refused_without_reading_it_whole() {
        let refused = read_secret_file(Path::new("/dev/zero"), 1).unwrap_err().to_string();
        assert!(refused.contains("/dev/zero") && refused.contains("not a secret file"), "{refused}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("a-good-secret-line\n{}", "x".repeat(MAX_SECRET_FILE as usize))).unwrap();
        assert!(read_secret_file(&file, 1).unwrap_err().to_string().contains("not a secret file"));
        std::fs::write(&file, "a-good-secret-line\nsecond line\n").unwrap();
        assert_eq!(read_secret_file(&file, 1).unwrap(), "a-good-secret-line");
    }

    /// A FIFO nobody writes to held the start forever; one written to, by a writer that
    /// keeps it open, gives its first line.
    #[test]
    fn a_secret_file_that_is_a_pipe_is_read_to_its_first_line_or_given_up_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).unwrap();
        let wait = std::time::Duration::from_millis(400);
        let refused = read_secret_file_within(&fifo, 1, wait).unwrap_err().to_string();
        assert!(refused.contains(fifo.to_str().unwrap()) && refused.contains("not a regular file"), "{refused}");
        // Another FIFO: the reader given up on above still waits on this one (the process
        // exits after giving up, which ends it).
        let fifo = dir.path().join("written");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).unwrap();
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                std::io::Write::write_all(&mut pipe, b"from-the-pipe\nrest").unwrap();
                std::thread::sleep(std::time::Duration::from_secs(2));
            })
        };
        assert_eq!(read_secret_file_within(&fifo, 1, std::time::Duration::from_secs(10)).unwrap(), "from-the-pipe");
        writer.join().unwrap();
    }

    /// `VALTHREE_REQUIREPASS` took an escape character or spaces alone, which files refuse.
    #[test]
    fn a_secret_from_the_environment_or_its_flag_passes_the_files_checks() {
        let value = |v: &str| secret_flag("--requirepass", Some(&v.to_string()), None);
        assert_eq!(value("").unwrap(), None, "empty: no password, as in Redis");
        assert_eq!(value("a good one").unwrap().as_deref(), Some("a good one"));
        assert_eq!(value("pw\n").unwrap().as_deref(), Some("pw"), "one line ending is not the secret's");
        assert_eq!(value("pw\r\n").unwrap().as_deref(), Some("pw"));
        for bad in ["\x1b", "  ", "pw\x1b[0m", "\u{feff}pw", "pw\n\n", "\n", &"x".repeat(70_000)] {
            let refused = value(bad).unwrap_err().to_string();
            assert!(refused.contains("--requirepass (or VALTHREE_REQUIREPASS)"), "{bad:?}: {refused}");
        }
        let refused = secret_flag("--admin-token", Some(&" ".to_string()), None).unwrap_err().to_string();
        assert!(refused.contains("VALTHREE_ADMIN_TOKEN"), "{refused}");
    }

    #[test]
    fn each_flag_reaches_its_modes_options() {
        let args = serve(&[
            "--mode",
            "dynamo",
            "--peers",
            "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003",
            "--node-id",
            "2",
            "--w",
            "3",
            "--read-repair",
            "off",
            "--handoff-grace",
            "5s",
            "--s3-batch",
            "off",
            "--paxos-one-rtt",
            "off",
            "--stale-reads",
        ]);
        let config = mode_config(&args).unwrap();
        assert_eq!(config.node.node_id, 2);
        assert_eq!(config.node.peers.len(), 3, "--peers is one value: the whole list");
        let dynamo = config.dynamo.options(config.node.clone());
        assert_eq!((dynamo.replicas, dynamo.r, dynamo.w), (3, 2, 3));
        assert!(!dynamo.read_repair && !dynamo.sync_read_repair);
        assert_eq!(dynamo.handoff_grace, std::time::Duration::from_secs(5));
        assert!(!config.s3.options().batch);
        assert!(!config.paxos.options(config.node.clone()).one_round_trip);
        assert!(config.raft.options(config.node.clone()).stale_reads);
    }
}

//! Node processes: start detached, signal, and tell apart up, paused and down — without
//! trusting a pid that a reboot may have handed to another program.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::state::NodeState;

/// What a node process is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Up,
    /// Stopped by SIGSTOP.
    Paused,
    /// Gone, a zombie, or the pid now belongs to another program.
    Down,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Up => "up",
            Liveness::Paused => "paused",
            Liveness::Down => "down",
        }
    }
}

/// Whether `node`'s recorded pid is still that node's process, and in which state.
pub fn liveness(node: &NodeState) -> Liveness {
    let proc = Path::new("/proc").join(node.pid.to_string());
    let Ok(cmdline) = std::fs::read(proc.join("cmdline")) else { return Liveness::Down };
    // argv[0] is the binary; the rest must be exactly this node's arguments (which name its
    // unique data directory), or the pid belongs to someone else now.
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).skip(1).collect();
    let ours = args.len() == node.args.len() && args.iter().zip(&node.args).all(|(a, b)| *a == b.as_bytes());
    if !ours {
        return Liveness::Down;
    }
    let stat = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
    // The state follows the parenthesised command name, which may itself contain spaces.
    match stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) {
        Some('T' | 't') => Liveness::Paused,
        Some('Z' | 'X') | None => Liveness::Down,
        Some(_) => Liveness::Up,
    }
}

/// Sends `signal` to the node if it is still that node's process.
pub fn signal(node: &NodeState, signal: Signal) -> Result<(), String> {
    if liveness(node) == Liveness::Down {
        return Err(format!("{} is not running", node.name));
    }
    kill(Pid::from_raw(node.pid as i32), signal).map_err(|e| format!("{}: {signal}: {e}", node.name))
}

/// Starts `valthree serve` for `node` in its own process group, detached from the terminal,
/// logging to its log file; returns the pid. A thread reaps the child if it dies while this
/// process lives, so a killed node never lingers as a zombie.
pub fn spawn(node: &NodeState, secrets: &super::state::Secrets) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(&node.data_dir).map_err(|e| format!("{}: {e}", node.data_dir.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .map_err(|e| format!("{}: {e}", node.log.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the valthree binary: {e}"))?;
    let mut command = Command::new(exe);
    // The password only when there is one: an empty variable would still count as given.
    match secrets.requirepass.as_str() {
        "" => command.env_remove("VALTHREE_REQUIREPASS"),
        password => command.env("VALTHREE_REQUIREPASS", password),
    };
    let mut child = command
        .args(&node.args)
        .env("VALTHREE_ADMIN_TOKEN", &secrets.admin_token)
        .env(crate::peer::SECRET_ENV, &secrets.cluster_secret)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", node.name))?;
    let pid = child.id();
    std::thread::spawn(move || child.wait());
    Ok(pid)
}

/// Waits until the node answers PING, or fails with the end of its log.
pub fn wait_ready(node: &NodeState, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        // The PONG must come from this pid: an old process on the port does not count.
        if liveness(node) == Liveness::Up && ping(&node.addr) {
            return Ok(());
        }
        // Between fork and exec the child still shows the parent's command line, so only a
        // process that is gone (or a zombie) counts as failed before the deadline.
        if exited(node.pid) || Instant::now() >= deadline {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            return Err(format!("{} did not come up on {}:\n  {}", node.name, node.addr, tail.join("\n  ")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when `pid` no longer runs (no such process, or a zombie).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => matches!(stat.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()), Some('Z' | 'X')),
    }
}

/// One PING over a fresh connection.
pub fn ping(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else { return false };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if let Some(password) = super::password() {
        let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
        let mut ok = [0u8; 5];
        if s.write_all(auth.as_bytes()).is_err() || s.read_exact(&mut ok).is_err() || &ok != b"+OK\r\n" {
            return false;
        }
    }
    let mut buf = [0u8; 7];
    s.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Waits for the node's process to end: gone or a zombie, so its files (and their locks)
/// and ports are released — not merely exiting, when its command line already reads empty.
pub fn wait_gone(node: &NodeState, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if gone(node) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gone(node)
}

/// True when the node's process has ended — every thread of it, so its files (and their
/// locks) are closed: its main thread turns zombie while others may still be tearing down —
/// or its pid belongs to another program now.
fn gone(node: &NodeState) -> bool {
    if exited(node.pid) {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", node.pid));
        let others_exited = |tasks: std::fs::ReadDir| {
            tasks.flatten().all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                !matches!(stat.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()), Some(c) if c != 'Z' && c != 'X')
            })
        };
        return tasks.map_or(true, others_exited);
    }
    // An exiting process shows an empty command line while it closes its files.
    let other_program = std::fs::read(format!("/proc/{}/cmdline", node.pid)).is_ok_and(|cmdline| !cmdline.is_empty());
    other_program && liveness(node) == Liveness::Down
}

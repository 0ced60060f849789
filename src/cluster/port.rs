//! Whether a local cluster may take a port, and when it may not, why.
//!
//! A port can be held by nothing but connections in TIME-WAIT, the minute a closed TCP
//! connection lingers on the side that closed first. SO_REUSEADDR (which both std's and
//! tokio's listeners set on Unix) lets a listener take over a port whose TIME-WAIT sockets
//! came from an earlier listener, but not one whose TIME-WAIT sockets were the local end of
//! outgoing connections: Linux takes those local ports from its ephemeral range (usually
//! 32768–60999), so after a few thousand short connections (a workload, the demos) any port
//! of that range may be held for a minute. SO_REUSEPORT would get past them, but would also
//! let a second server share a port with a live one; so instead the refusal says what holds
//! the port and how long it will.

/// What holds a TCP port on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortUse {
    /// A listener can bind it.
    Free,
    /// Only closed connections lingering in TIME-WAIT (gone within a minute).
    TimeWaitOnly { sockets: usize },
    /// A live socket (or something this process cannot see).
    Taken,
}

/// The TCP state number of TIME-WAIT in `/proc/net/tcp`.
const TIME_WAIT: u8 = 0x06;

/// What holds `port` now.
pub fn port_use(port: u16) -> PortUse {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => PortUse::Free,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let states: Vec<u8> = ["/proc/net/tcp", "/proc/net/tcp6"]
                .iter()
                .filter_map(|path| std::fs::read_to_string(path).ok())
                .flat_map(|table| socket_states(&table, port))
                .collect();
            if !states.is_empty() && states.iter().all(|s| *s == TIME_WAIT) {
                PortUse::TimeWaitOnly { sockets: states.len() }
            } else {
                PortUse::Taken
            }
        }
        Err(_) => PortUse::Taken,
    }
}

/// The states of the sockets whose local port is `port`, from a `/proc/net/tcp` table
/// (`sl local_address rem_address st ...`, addresses as `HEXADDR:HEXPORT`).
fn socket_states(table: &str, port: u16) -> Vec<u8> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (local_port == port).then(|| u8::from_str_radix(state, 16).ok()).flatten()
        })
        .collect()
}

/// The kernel's range of local ports for outgoing connections, if it says.
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = text.split_whitespace().map(|b| b.parse().ok());
    Some((bounds.next()??, bounds.next()??))
}

/// `Ok` when a node may listen on `port`, else why not, in words a user can act on.
pub fn check_port(port: u16) -> Result<(), String> {
    match port_use(port) {
        PortUse::Free => Ok(()),
        PortUse::Taken => Err(format!("port {port} is taken: choose another --base-port")),
        PortUse::TimeWaitOnly { sockets } => {
            let why = match ephemeral_range() {
                Some((low, high)) if (low..=high).contains(&port) => format!(
                    "; it lies in the kernel's range for outgoing connections' local ports, {low}–{high}, \
                     so a --base-port below {low} avoids this"
                ),
                _ => String::new(),
            };
            Err(format!(
                "port {port} is held only by {sockets} closed connection{} in TIME-WAIT, which the kernel keeps \
                 for up to a minute{why}: wait a minute, or choose another --base-port",
                if sockets == 1 { "" } else { "s" }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// A connection this side closes first: its local port, left in TIME-WAIT.
    fn closed_connection() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let port = client.local_addr().unwrap().port();
        let (mut server, _) = listener.accept().unwrap();
        drop(client);
        let _ = server.read(&mut [0u8; 1]);
        drop(server);
        port
    }

    #[test]
    fn a_port_held_only_by_time_wait_is_refused_saying_so() {
        // Linux lets outgoing connections to other destinations share a local port, so a
        // live connection of another test may hold this one's port too: then take another.
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = 'found: loop {
            let port = closed_connection();
            let attempt = Instant::now() + Duration::from_secs(3);
            while Instant::now() < attempt {
                if matches!(port_use(port), PortUse::TimeWaitOnly { .. }) {
                    break 'found port;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(Instant::now() < deadline, "no closed connection's port was found in TIME-WAIT alone");
        };
        let refusal = check_port(port).unwrap_err();
        assert!(refusal.contains("TIME-WAIT") && refusal.contains("wait a minute"), "{refusal}");
    }

    #[test]
    fn a_port_with_a_listener_is_taken() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(port_use(port), PortUse::Taken);
        assert_eq!(check_port(port).unwrap_err(), format!("port {port} is taken: choose another --base-port"));
    }

    #[test]
    fn proc_net_tcp_lines_give_each_local_ports_state() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                     \x20  0: 0100007F:9CA6 0100007F:E4F1 06 00000000:00000000 03:00001770 00000000     0        0 0\n\
                     \x20  1: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1\n";
        assert_eq!(socket_states(table, 0x9CA6), vec![TIME_WAIT]);
        assert_eq!(socket_states(table, 6379), vec![0x0A]);
        assert!(socket_states(table, 1).is_empty());
    }
}

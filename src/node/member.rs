//! Who is in a cluster: node ids, members, and the `--peers` list they come from.

use serde::{Deserialize, Serialize};

/// A node's id: 1, 2, ... — never 0, and never reused (paxos ballots and raft votes carry it).
pub type NodeId = u32;

/// A member of the cluster: node id and the address its peers reach it at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: NodeId,
    pub peer_addr: String,
}

/// Parses `--peers`: `1=host:port,2=host:port,...`, sorted by id. Ids start at 1, each id
/// appears once, and every address is `host:port`.
pub fn parse_peers(text: &str) -> Result<Vec<Member>, String> {
    let mut members: Vec<Member> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| format!("expected id=host:port, got {part:?}"))?;
        let id: NodeId = id.trim().parse().map_err(|_| format!("not a node id: {id:?}"))?;
        if id == 0 {
            return Err("node ids start at 1".into());
        }
        if members.iter().any(|m| m.id == id) {
            return Err(format!("node {id} is listed twice"));
        }
        let addr = addr.trim();
        if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            return Err(format!("node {id}: expected host:port, got {addr:?}"));
        }
        members.push(Member { id, peer_addr: addr.to_string() });
    }
    members.sort_by_key(|m| m.id);
    Ok(members)
}

/// The members as `1=host:port,2=host:port` (INFO, logs).
pub fn list(members: &[Member]) -> String {
    members.iter().map(|m| format!("{}={}", m.id, m.peer_addr)).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_sorted_and_bad_lists_are_refused() {
        let peers = parse_peers("2=127.0.0.1:2, 1=127.0.0.1:1").unwrap();
        assert_eq!(peers.iter().map(|m| m.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(list(&peers), "1=127.0.0.1:1,2=127.0.0.1:2");
        assert!(parse_peers("1=a:1,1=b:2").unwrap_err().contains("twice"));
        assert!(parse_peers("0=a:1").is_err());
        assert!(parse_peers("x").is_err());
        assert!(parse_peers("1=nohost").unwrap_err().contains("host:port"));
        assert!(parse_peers("1=h:99999").is_err());
    }
}

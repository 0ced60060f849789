//! `cluster.json`: what `cluster up` started, so every later command can find it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The state file's name inside the cluster directory.
pub const STATE_FILE: &str = "cluster.json";

/// One node of a local cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// `n1`, `n2`, ...
    pub name: String,
    pub id: u32,
    pub pid: u32,
    /// Where clients connect.
    pub addr: String,
    /// Where peers connect (node↔node traffic).
    pub peer_addr: String,
    /// Where its HTTP admin endpoint serves `/metrics`, `/livez` and `/readyz` (empty: none;
    /// also in files written before nodes had one).
    #[serde(default)]
    pub metrics_addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// The full `valthree serve ...` argument list, so a restart is the same node.
    pub args: Vec<String>,
}

/// A local cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub mode: String,
    pub dir: PathBuf,
    /// The admin token every node was started with (this file is readable by its owner only).
    pub admin_token: String,
    /// The cluster secret every node's peer calls show (passed in the environment, never in
    /// argv). Empty in files written before peers were authenticated.
    #[serde(default)]
    pub cluster_secret: String,
    /// The client password (`cluster up -- --requirepass P`), passed to the nodes in their
    /// environment instead of their argv, and used by every cluster command that talks to them.
    #[serde(default)]
    pub requirepass: String,
    pub nodes: Vec<NodeState>,
    /// The groups of the partition in force, when it is one of groups; re-applied to a node
    /// that restarts; empty when healed.
    #[serde(default)]
    pub partition: Vec<Vec<String>>,
    /// The directed cuts of the partition in force (`[a, b]`: a's messages to b are lost),
    /// whatever its shape; empty when healed (and in files written before shapes, whose
    /// groups say it all).
    #[serde(default)]
    pub cuts: Vec<(String, String)>,
    /// The partition in force refuses calls at once instead of dropping them.
    #[serde(default)]
    pub refuse: bool,
    /// Per node, the `VALTHREE.FAULT … PACKETS` arguments of the packet faults in force,
    /// re-applied to a node that restarts; empty when healed.
    #[serde(default)]
    pub packets: std::collections::BTreeMap<String, Vec<String>>,
    /// The id the next added node gets: ids are never reused (a reused id would reuse ballots
    /// in paxos mode). 0 in files written before nodes could be added.
    #[serde(default)]
    pub next_id: u32,
}

/// What a node is started with in its environment, never on its command line.
pub struct Secrets {
    pub admin_token: String,
    pub cluster_secret: String,
    pub requirepass: String,
}

impl ClusterState {
    /// The secrets a node of this cluster is started with.
    pub fn secrets(&self) -> Secrets {
        Secrets {
            admin_token: self.admin_token.clone(),
            cluster_secret: self.cluster_secret.clone(),
            requirepass: self.requirepass.clone(),
        }
    }

    /// The state file of the cluster in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Reads the state file; `Ok(None)` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, String> {
        let path = Self::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let state: Self = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                super::set_password(&state.requirepass);
                Ok(Some(state))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Reads the state file, or explains that there is no cluster.
    pub fn require(dir: &Path) -> Result<Self, String> {
        Self::load(dir)?
            .ok_or_else(|| format!("no cluster in {} (start one with `valthree cluster up`)", dir.display()))
    }

    /// Runs `change` on the freshly read state while holding the cluster's lock, then saves
    /// it, so concurrent commands (a user and a nemesis) never overwrite each other's pids.
    pub fn update<T>(dir: &Path, change: impl FnOnce(&mut ClusterState) -> Result<T, String>) -> Result<T, String> {
        let lock_path = dir.join(".cluster.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        lock.lock().map_err(|e| format!("{}: {e}", lock_path.display()))?;
        let mut state = Self::require(dir)?;
        let result = change(&mut state);
        state.save()?;
        result
    }

    /// Writes the state file atomically, readable by its owner only.
    pub fn save(&self) -> Result<(), String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = Self::path(&self.dir);
        let tmp = self.dir.join(format!(".{STATE_FILE}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(self).expect("state serialises"))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The node called `name` (`n2`, or just `2`).
    pub fn node(&self, name: &str) -> Result<&NodeState, String> {
        let wanted = if name.starts_with('n') { name.to_string() } else { format!("n{name}") };
        self.nodes.iter().find(|n| n.name == wanted).ok_or_else(|| {
            let known: Vec<_> = self.nodes.iter().map(|n| n.name.as_str()).collect();
            format!("no node {name:?} (nodes: {})", known.join(", "))
        })
    }

    /// The node called `name`, for updating.
    pub fn node_mut(&mut self, name: &str) -> Result<&mut NodeState, String> {
        let name = self.node(name)?.name.clone();
        Ok(self.nodes.iter_mut().find(|n| n.name == name).expect("found above"))
    }
}

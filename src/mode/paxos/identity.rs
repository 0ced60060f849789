//! Which data directory a member's acceptor is: its *incarnation*.
//!
//! CASPaxos is safe because an acceptor never forgets what it promised and accepted. A node
//! whose data directory was emptied (or swapped for another) and that restarts under its old
//! name has forgotten both; counted in a quorum beside a node that missed a write, it lets a
//! second value be chosen, and acknowledged writes read as they were before. So:
//!
//! * Each data directory draws a random incarnation when it is first opened and keeps it
//!   (`acceptor.redb`, [`super::storage::Recovered::incarnation`]).
//! * The configuration records each member's incarnation ([`Config::incarnations`]). The
//!   *recorder* — the member with the smallest id — records the members not yet recorded:
//!   only while every member answers and none holds a newer configuration (a recorder
//!   whose own directory was emptied learns the cluster's configuration instead, and with it
//!   that its data was lost), and only while no membership change runs. A brand-new cluster
//!   is recorded as soon as all its nodes are up; a node added by `add-node` in the
//!   change's joint configuration (the joint quorums may need its vote: from one node to two
//!   they do), asked for its incarnation before the change starts.
//! * An acceptor votes (answers prepares, accepts, removals and key listings) only once its
//!   installed configuration records its own incarnation. A directory created empty has
//!   therefore never voted before it was recorded, which is what makes recording it safe.
//!   (A directory an older release wrote, which voted before incarnations existed, votes
//!   while unrecorded and is recorded like the others; it is the one case where an emptied
//!   directory could still be taken for the old one: until the recorder has recorded it.)
//! * Every acceptor batch is addressed to the incarnation the sender's configuration records.
//!   A node that receives one meant for another incarnation, or installs a configuration
//!   that records another, knows its acceptor state was lost: it refuses to vote for good and
//!   says so (log, INFO `paxos_data: lost`, and every refusal), until it is removed and a new
//!   node is added in its place (`cluster remove-node`, then `cluster add-node`).
//! * A node that may not vote yet asks its peers for their configuration, so a recording it
//!   missed reaches it.

use std::sync::Arc;
use std::time::Duration;

use super::ballot::NodeId;
use super::node::Node;
use super::storage::Config;
use super::wire;
use crate::error::{Error, Result};

/// How often the recorder looks for members not yet recorded, and a node that may not vote
/// asks its peers for their configuration.
pub(super) const RECORD_EVERY: Duration = Duration::from_millis(250);
/// How long one peer may take to answer a configuration call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a membership change waits for the node it adds to answer: a node just started
/// on a loaded machine may take a while to accept its first connection (a peer connection
/// must be made within half a second).
const NEW_NODE_PATIENCE: Duration = Duration::from_secs(5);

/// Why this node's acceptor may not vote now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Silenced {
    /// The configuration does not record this directory's incarnation yet.
    NotRecorded,
    /// The cluster knows another incarnation of this node: its acceptor state was lost.
    Lost(u64),
}

/// What a node whose acceptor state was lost says (in its log, to its peers and in INFO).
pub(super) fn lost_data_message(id: NodeId, incarnation: u64, known: u64) -> String {
    format!(
        "n{id}'s data directory (incarnation {incarnation:x}) is not the one the cluster knows (incarnation \
         {known:x}): its acceptor state was lost, so it takes no part in any quorum; remove it and add a new node \
         in its place (`valthree cluster remove-node n{id}`, then `valthree cluster add-node`)"
    )
}

impl Node {
    /// Why this node's acceptor may not vote now, if it may not.
    pub(super) fn silenced(&self) -> Option<Silenced> {
        if let Some(known) = self.lost.get() {
            return Some(Silenced::Lost(*known));
        }
        let recorded = crate::node::read_lock(&self.config).incarnation_of(self.id);
        if recorded == self.incarnation {
            None
        } else if recorded != 0 {
            Some(self.lose(recorded))
        } else if self.late {
            None
        } else {
            Some(Silenced::NotRecorded)
        }
    }

    /// Marks this node's acceptor state as lost (the cluster knows incarnation `known`).
    pub(super) fn lose(&self, known: u64) -> Silenced {
        if self.lost.set(known).is_ok() {
            tracing::error!("{}", lost_data_message(self.id, self.incarnation, known));
        }
        Silenced::Lost(*self.lost.get().unwrap_or(&known))
    }

    /// Why a vote is refused, in words.
    pub(super) fn silenced_message(&self, why: &Silenced) -> String {
        match why {
            Silenced::Lost(known) => lost_data_message(self.id, self.incarnation, *known),
            Silenced::NotRecorded => format!(
                "n{}'s data directory (incarnation {:x}) is not recorded in the configuration yet: it votes once the \
                 member with the smallest id has recorded it (every member must be up)",
                self.id, self.incarnation
            ),
        }
    }

    /// Refuses unless this node's acceptor may vote now.
    pub(super) fn may_vote(&self) -> Result<()> {
        match self.silenced() {
            None => Ok(()),
            Some(why) => Err(Error::TryAgain(self.silenced_message(&why))),
        }
    }

    /// What INFO says of this node's data directory (`paxos_data`).
    pub(super) fn data_state(&self) -> String {
        match self.silenced() {
            None if self.late && self.config().incarnation_of(self.id) == 0 => {
                format!("incarnation {:x} (written before incarnations; not yet recorded)", self.incarnation)
            }
            None => format!("incarnation {:x}", self.incarnation),
            Some(Silenced::NotRecorded) => format!("incarnation {:x} (not yet recorded: not voting)", self.incarnation),
            Some(Silenced::Lost(known)) => format!("lost: {}", lost_data_message(self.id, self.incarnation, known)),
        }
    }

    /// One configuration call to `to`: offers `config` and returns the peer's configuration
    /// and its incarnation.
    pub(super) async fn exchange(&self, to: &super::storage::Member, config: &Config) -> Result<(Config, u64)> {
        let mut client = self.client_at(to.id, &to.peer_addr)?;
        let reply = tokio::time::timeout(CALL_TIMEOUT, client.configure(wire::config_to(config)))
            .await
            .map_err(|_| Error::TryAgain(format!("n{} did not answer in time", to.id)))?
            .map_err(|s| Error::TryAgain(format!("n{}: {}", to.id, s.message())))?
            .into_inner();
        let current = reply.current.map(wire::config_from).ok_or_else(|| Error::Peer("no configuration".into()))?;
        Ok((current, reply.incarnation))
    }

    /// The incarnation of `added`'s data directory (0 from a release older than incarnations),
    /// asked before the membership change that adds it: a configuration call offering
    /// version 0, which installs nothing. Repeated for [`NEW_NODE_PATIENCE`] while it fails —
    /// harmless, and the node may be just starting — and that first connection is then the
    /// one the joint configuration is pushed on.
    pub(super) async fn incarnation_of_new(&self, added: &super::storage::Member) -> Result<u64> {
        let deadline = tokio::time::Instant::now() + NEW_NODE_PATIENCE;
        loop {
            match self.exchange(added, &Config::default()).await {
                Ok((_, incarnation)) => return Ok(incarnation),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::debug!(node = added.id, "the node to add does not answer yet: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A node that may not vote yet: installs the newest configuration a peer holds (a
    /// recording it missed; or one that says its data was lost).
    async fn catch_up(self: &Arc<Self>) {
        let config = self.config();
        for m in config.everyone().into_iter().filter(|m| m.id != self.id) {
            if let Ok((theirs, _)) = self.exchange(&m, &config).await
                && theirs.version > self.config().version
                && let Err(e) = self.install(theirs).await
            {
                tracing::debug!(peer = m.id, "cannot install the peer's configuration: {e}");
            }
        }
    }

    /// The recorder's round: records every member that is not recorded yet, if every member
    /// answers and none holds a newer configuration. Returns what it recorded.
    async fn record(self: &Arc<Self>) -> Result<Vec<NodeId>> {
        let _one_change_at_a_time = self.membership.lock().await;
        let config = self.config();
        if config.previous.is_some() || config.members.iter().all(|m| config.incarnation_of(m.id) != 0) {
            return Ok(Vec::new());
        }
        let answers = futures_util::future::join_all(config.members.iter().map(|m| {
            let config = &config;
            async move {
                if m.id == self.id {
                    return (m.id, Ok((config.clone(), self.incarnation)));
                }
                (m.id, self.exchange(m, config).await)
            }
        }))
        .await;
        let mut recorded = config.clone();
        for (id, answer) in answers {
            let (theirs, incarnation) = answer?;
            if theirs.version > config.version {
                // This node's configuration is behind (its directory may have been emptied):
                // take the cluster's, and record nothing.
                self.install(theirs).await?;
                return Ok(Vec::new());
            }
            if theirs != config {
                return Err(Error::TryAgain(format!("n{id} holds another configuration")));
            }
            if config.incarnation_of(id) == 0 && incarnation != 0 {
                recorded.incarnations.insert(id, incarnation);
            }
        }
        let added: Vec<NodeId> =
            recorded.incarnations.keys().filter(|id| config.incarnation_of(**id) == 0).copied().collect();
        if added.is_empty() {
            return Ok(added);
        }
        recorded.version = config
            .version
            .checked_add(1)
            .ok_or_else(|| Error::Input("the configuration version is exhausted".into()))?;
        let failed = self.push_config(&recorded, &recorded.everyone()).await;
        if !failed.is_empty() {
            // Those nodes ask for it themselves (see `catch_up`).
            tracing::info!("incarnations recorded; not yet told: {}", failed.join("; "));
        }
        Ok(added)
    }
}

impl Node {
    /// On the recorder (the member with the smallest id, its own data not lost): one round
    /// of [`Node::record`].
    pub(super) async fn record_if_recorder(self: &Arc<Self>) {
        let recorder = self.config().members.iter().map(|m| m.id).min() == Some(self.id);
        if !recorder || matches!(self.silenced(), Some(Silenced::Lost(_))) {
            return;
        }
        match self.record().await {
            Ok(added) if !added.is_empty() => {
                tracing::info!(recorded = ?added, version = self.config().version, "incarnations recorded")
            }
            Ok(_) => {}
            Err(e) => tracing::debug!("incarnations not recorded yet: {e}"),
        }
    }
}

/// Records incarnations (on the recorder) and catches up a node that may not vote, every
/// [`RECORD_EVERY`], for as long as the node runs.
pub(super) async fn run_identity(node: std::sync::Weak<Node>) {
    loop {
        tokio::time::sleep(RECORD_EVERY).await;
        let Some(node) = node.upgrade() else { return };
        if node.silenced() == Some(Silenced::NotRecorded) {
            node.catch_up().await;
        }
        node.record_if_recorder().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::local;
    use super::super::node::{PaxosMode, PaxosOptions};
    use crate::node::{Faults, NodeOptions};
    use crate::store::MembershipChange;

    /// A node to be added (`--join`: no configuration yet) at `peer_addr`.
    async fn joining(dir: &std::path::Path, id: u32, peer_addr: &str) -> PaxosMode {
        let mut node = NodeOptions::local(id, peer_addr, Vec::new(), dir.join(format!("n{id}")));
        node.join = true;
        let options = PaxosOptions {
            node,
            one_round_trip: false,
            unsafe_accept_quorum: None,
            gc_interval: Duration::ZERO,
            ballot_ceiling: true,
        };
        PaxosMode::start(options, Arc::new(Faults::default())).await.unwrap()
    }

    fn free_addr() -> String {
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port())
    }

    /// A one-node cluster grows to two: the joint configuration's quorums need the new node
    /// (a majority of two is both), so it must vote from the joint configuration on — its
    /// incarnation is recorded there, not only once the change is done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_one_node_cluster_grows_to_two() {
        let tmp = tempfile::tempdir().unwrap();
        let nodes = local::cluster(tmp.path(), 1).await;
        let addr = free_addr();
        let added = joining(tmp.path(), 2, &addr).await;
        let done = tokio::time::timeout(
            Duration::from_secs(60),
            nodes[0].change_membership(MembershipChange::Add { id: 2, peer_addr: addr }),
        )
        .await
        .expect("the change ends");
        done.unwrap();
        assert_eq!(nodes[0].node.config().ids(), vec![1, 2]);
        assert!(nodes[0].node.config().previous.is_none());
        local::until_recorded(&[added]).await;
    }

    /// A node being added may accept its first connection late (just started, on a loaded
    /// machine): the change waits a while for it instead of failing at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_added_that_answers_late_is_added() {
        let tmp = tempfile::tempdir().unwrap();
        let nodes = local::cluster(tmp.path(), 3).await;
        let addr = free_addr();
        let late = {
            let (dir, addr) = (tmp.path().to_path_buf(), addr.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                joining(&dir, 4, &addr).await
            })
        };
        let change = nodes[0].change_membership(MembershipChange::Add { id: 4, peer_addr: addr.clone() });
        tokio::time::timeout(Duration::from_secs(60), change).await.expect("the change ends").unwrap();
        let added = late.await.unwrap();
        assert_eq!(nodes[0].node.config().ids(), vec![1, 2, 3, 4]);
        local::until_recorded(&[added]).await;
    }
}

//! Membership by joint consensus (§2.3), and the key listing it and FLUSHALL/DBSIZE share.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::proposer::{Command, Outcome};
use super::storage::{Config, KeyFilter, Member};
use super::wire;
use crate::error::{Error, Result};
use crate::node::{read_lock, write_lock};
use crate::peer::proto;
use crate::store::{Listing, MembershipChange, Pattern, ScanPage, merge, scan_hash};

use super::node::{DriverEvent, Node, PaxosMode, SCAN_PARALLELISM};

impl Node {
    /// Every key some acceptor of a quorum holds a value for: a superset of the keys whose
    /// value was chosen before the call (every chosen value is on a quorum, and quorums meet).
    pub(super) async fn keys_from_quorum(self: &Arc<Self>, tombstones: bool) -> Result<BTreeSet<Bytes>> {
        let filter = if tombstones { KeyFilter::All } else { KeyFilter::Values };
        let config = self.config();
        let calls = config.everyone().into_iter().map(|m| {
            let node = self.clone();
            async move {
                let keys = async {
                    if m.id == node.id {
                        node.may_vote()?;
                        let storage = node.storage.clone();
                        tokio::task::spawn_blocking(move || storage.keys(filter, None, usize::MAX, |_| true))
                            .await
                            .map_err(|e| Error::Io(e.to_string()))?
                    } else {
                        let mut client = node.client(m.id)?;
                        let request = proto::ListKeysRequest { from: node.id, tombstones };
                        match tokio::time::timeout(Duration::from_secs(2), client.list_keys(request)).await {
                            Ok(Ok(reply)) => Ok(reply.into_inner().keys),
                            Ok(Err(s)) => Err(Error::TryAgain(s.message().to_string())),
                            Err(_) => Err(Error::TryAgain(format!("n{} did not answer in time", m.id))),
                        }
                    }
                }
                .await;
                (m.id, keys)
            }
        });
        let results = futures_util::future::join_all(calls).await;
        let mut answered = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (id, result) in results {
            if let Ok(list) = result {
                answered.insert(id);
                keys.extend(list);
            }
        }
        if !config.quorums().is_quorum(&answered) {
            return Err(Error::TryAgain("no quorum of acceptors answered the key listing".into()));
        }
        Ok(keys)
    }

    /// One page of SCAN. Every acceptor is asked for its slots in the page's range of the
    /// scan order; the page needs a quorum of answers and ends where the shortest answer ends.
    /// A key every answer holds a value for is returned at once: a quorum holds it, so no DEL
    /// of it was chosen before the page (a chosen DEL's tombstone is on a quorum, and quorums
    /// meet). Any other key some answer holds a value for is read through a quorum first (a
    /// linearizable read, which also settles a write left half done) and returned if it has a
    /// value. A key whose value is chosen is on a quorum, so some answer lists it: a key
    /// present for the whole scan is returned.
    pub(super) async fn scan(
        self: &Arc<Self>,
        cursor: u64,
        count: usize,
        pattern: Option<&Pattern>,
    ) -> Result<ScanPage> {
        let config = self.config();
        let calls = config.everyone().into_iter().map(|m| {
            let node = self.clone();
            async move {
                let listing = async {
                    if m.id == node.id {
                        node.may_vote()?;
                        let storage = node.storage.clone();
                        tokio::task::spawn_blocking(move || storage.scan(cursor, count))
                            .await
                            .map_err(|e| Error::Io(e.to_string()))?
                    } else {
                        let mut client = node.client(m.id)?;
                        let count = u32::try_from(count).unwrap_or(u32::MAX);
                        let request = proto::ScanKeysRequest { from: node.id, cursor, count };
                        match tokio::time::timeout(Duration::from_secs(5), client.scan_keys(request)).await {
                            Ok(Ok(reply)) => {
                                let reply = reply.into_inner();
                                let keys = reply.keys.into_iter().map(|k| (scan_hash(&k.key), k.key, k.live)).collect();
                                Ok(Listing { keys, through: reply.through })
                            }
                            Ok(Err(s)) => Err(Error::TryAgain(s.message().to_string())),
                            Err(_) => Err(Error::TryAgain(format!("n{} did not answer in time", m.id))),
                        }
                    }
                }
                .await;
                (m.id, listing)
            }
        });
        let mut answered = BTreeSet::new();
        let mut listings = Vec::new();
        for (id, listing) in futures_util::future::join_all(calls).await {
            if let Ok(listing) = listing {
                answered.insert(id);
                listings.push(listing);
            }
        }
        if !config.quorums().is_quorum(&answered) {
            return Err(Error::TryAgain("no quorum of acceptors answered the scan".into()));
        }
        let merged = merge(cursor, &listings);
        let matching = |k: &Bytes| pattern.is_none_or(|p| p.matches_everything() || p.matches(k));
        let candidates: Vec<_> = merged.keys.into_iter().filter(|m| matching(&m.key)).collect();
        let node = self.clone();
        let checked: Vec<(Bytes, Result<bool>)> = futures_util::stream::iter(candidates)
            .map(|m| {
                let node = node.clone();
                let everywhere = m.live_in == merged.listings;
                async move {
                    if everywhere {
                        return (m.key, Ok(true));
                    }
                    let read = node.run(m.key.clone(), Command::Read).await;
                    (m.key, read.map(|o| matches!(o, Outcome::Read(Some(_)))))
                }
            })
            .buffered(SCAN_PARALLELISM)
            .collect()
            .await;
        let mut keys = Vec::new();
        for (key, present) in checked {
            if present? {
                keys.push(key);
            }
        }
        Ok(ScanPage { keys, cursor: merged.cursor })
    }

    /// Installs `config` if it is newer: persisted first, then the proposer switches. A
    /// configuration no change could have made is refused (see [`check_pushed`]).
    pub(super) async fn install(&self, config: Config) -> Result<bool> {
        let _one_at_a_time = self.installing.lock().await;
        {
            let current = read_lock(&self.config);
            if config.version <= current.version {
                return Ok(config == *current);
            }
            check_pushed(&config, &current)?;
        }
        let storage = self.storage.clone();
        let saved = config.clone();
        tokio::task::spawn_blocking(move || storage.save_config(&saved))
            .await
            .map_err(|e| Error::Io(e.to_string()))??;
        {
            let mut current = write_lock(&self.config);
            if config.version <= current.version {
                return Ok(config == *current);
            }
            *current = config.clone();
            self.config_version.store(config.version, Ordering::SeqCst);
        }
        tracing::info!(version = config.version, members = ?config.ids(), joint = config.previous.is_some(), "configuration installed");
        let (done, rx) = oneshot::channel();
        let _ = self.driver.send(DriverEvent::SetConfig { config, done });
        let _ = rx.await;
        Ok(true)
    }

    /// Pushes `config` to `nodes` (and installs it here); returns the nodes that refused or failed.
    pub(super) async fn push_config(self: &Arc<Self>, config: &Config, nodes: &[Member]) -> Vec<String> {
        let calls = nodes.iter().map(|m| {
            let node = self.clone();
            let config = config.clone();
            let m = m.clone();
            async move {
                let result = if m.id == node.id {
                    node.install(config).await
                } else {
                    let mut client = match node.client_at(m.id, &m.peer_addr) {
                        Ok(c) => c,
                        Err(e) => return Some(format!("n{}: {e}", m.id)),
                    };
                    match tokio::time::timeout(Duration::from_secs(5), client.configure(wire::config_to(&config))).await
                    {
                        Ok(Ok(reply)) => Ok(reply.into_inner().installed),
                        Ok(Err(s)) => Err(Error::TryAgain(s.message().to_string())),
                        Err(_) => Err(Error::TryAgain("timed out".into())),
                    }
                };
                match result {
                    Ok(true) => None,
                    Ok(false) => Some(format!("n{} holds a newer configuration", m.id)),
                    Err(e) => Some(format!("n{}: {e}", m.id)),
                }
            }
        });
        futures_util::future::join_all(calls).await.into_iter().flatten().collect()
    }
}

impl PaxosMode {
    /// Membership change by joint consensus (the safe reading of §2.3):
    ///
    /// 1. Every node of the old and new configuration installs the *joint* configuration,
    ///    whose quorums are a majority of the new members **and** a majority of the old ones;
    ///    each node drops its cached 1-RTT promises and restarts or fails rounds counted
    ///    against the old quorums. All must confirm, or the change is rolled back.
    /// 2. Rescan: every key any old quorum holds is read through the proposer. A read is an
    ///    identity write, so its value is re-accepted by a joint quorum, which includes a
    ///    majority of the new members.
    /// 3. Every node installs the new configuration alone.
    ///
    /// Any two quorums used before, during and after the change intersect, so no chosen
    /// value is lost and none comes back. One change at a time; a change interrupted after
    /// step 1 leaves the cluster in the (safe, slower) joint configuration and is finished by
    /// asking for the same change again.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<Vec<String>> {
        let node = &self.node;
        let _one_at_a_time = node.membership.lock().await;
        let current = node.config();
        let target: Vec<Member> = match &change {
            MembershipChange::Show => return Ok(show(&current)),
            MembershipChange::Add { id, peer_addr } => {
                let base = current.members.clone();
                let resuming = current.previous.is_some() && base.iter().any(|m| m.id == *id);
                if *id <= current.highest_id && !base.iter().any(|m| m.id == *id) && !resuming {
                    return Err(Error::Input(format!(
                        "node id {id} was already used (highest so far: {}): a new node needs a new id",
                        current.highest_id
                    )));
                }
                if let Some(m) = base.iter().find(|m| m.id == *id) {
                    if m.peer_addr != *peer_addr {
                        return Err(Error::Input(format!("node {id} is already a member at {}", m.peer_addr)));
                    }
                    if current.previous.is_none() {
                        return Ok(show(&current));
                    }
                }
                let mut members = base;
                if !members.iter().any(|m| m.id == *id) {
                    members.push(Member { id: *id, peer_addr: peer_addr.clone() });
                }
                members.sort_by_key(|m| m.id);
                members
            }
            MembershipChange::Remove { id } => {
                if !current.members.iter().any(|m| m.id == *id) && current.previous.is_none() {
                    return Ok(show(&current));
                }
                let members: Vec<Member> = current.members.iter().filter(|m| m.id != *id).cloned().collect();
                if members.is_empty() {
                    return Err(Error::Input("cannot remove the last member".into()));
                }
                members
            }
        };
        let joint = match &current.previous {
            Some(_) if current.members == target => current.clone(), // finish an interrupted change
            Some(_) => {
                return Err(Error::TryAgain(
                    "another membership change is unfinished: repeat it before starting a new one".into(),
                ));
            }
            None => {
                let mut incarnations = current.incarnations.clone();
                // A node added with an empty directory has never voted: its incarnation is
                // recorded in the joint configuration, so it votes from there on — the joint
                // quorums may need it (growing from one node to two, they do) — see `identity`.
                if let MembershipChange::Add { id, peer_addr } = &change
                    && !incarnations.contains_key(id)
                {
                    let added = Member { id: *id, peer_addr: peer_addr.clone() };
                    let incarnation = node.incarnation_of_new(&added).await.map_err(|e| {
                        Error::TryAgain(format!("n{id}, the node to add, does not answer ({e}); nothing changed"))
                    })?;
                    if incarnation != 0 {
                        incarnations.insert(*id, incarnation);
                    }
                }
                Config {
                    version: current
                        .version
                        .checked_add(1)
                        .ok_or_else(|| Error::Input("the configuration version is exhausted".into()))?,
                    highest_id: target.iter().map(|m| m.id).max().unwrap_or(0).max(current.highest_id),
                    members: target.clone(),
                    previous: Some(current.members.clone()),
                    incarnations,
                }
            }
        };
        let everyone = joint.everyone();
        let failed = node.push_config(&joint, &everyone).await;
        if !failed.is_empty() {
            if current.previous.is_none() {
                let back = Config {
                    version: joint.version + 1,
                    members: current.members.clone(),
                    previous: None,
                    highest_id: joint.highest_id,
                    incarnations: current.incarnations.clone(),
                };
                let _ = node.push_config(&back, &everyone).await;
            }
            return Err(Error::TryAgain(format!(
                "every node must install the joint configuration; failed: {}",
                failed.join("; ")
            )));
        }
        // Rescan: bring every key — values and tombstones — onto a quorum of the new members.
        let keys = node.keys_from_quorum(true).await?;
        let scanned = keys.len();
        let results: Vec<Result<Outcome>> = futures_util::stream::iter(keys)
            .map(|k| {
                let node = node.clone();
                async move {
                    let mut last = Err(Error::TryAgain("not tried".into()));
                    for _ in 0..5 {
                        last = node.propose(k.clone(), Command::Read).await;
                        if last.is_ok() {
                            break;
                        }
                    }
                    last
                }
            })
            .buffer_unordered(SCAN_PARALLELISM)
            .collect()
            .await;
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            return Err(Error::TryAgain(format!(
                "rescan failed ({e}); the cluster stays in the joint configuration: repeat the command"
            )));
        }
        let mut incarnations = joint.incarnations.clone();
        incarnations.retain(|id, _| target.iter().any(|m| m.id == *id));
        // An interrupted change resumed from a joint configuration that does not record the
        // node added (an older release's): it is recorded with the last configuration.
        if let MembershipChange::Add { id, peer_addr } = &change
            && !incarnations.contains_key(id)
        {
            let added = Member { id: *id, peer_addr: peer_addr.clone() };
            match node.exchange(&added, &joint).await {
                Ok((_, incarnation)) if incarnation != 0 => {
                    incarnations.insert(*id, incarnation);
                }
                Ok(_) => {}
                Err(e) => tracing::info!("n{id}'s incarnation not recorded with the change (later): {e}"),
            }
        }
        let last = Config {
            version: joint.version + 1,
            members: target,
            previous: None,
            highest_id: joint.highest_id,
            incarnations,
        };
        let failed = node.push_config(&last, &everyone).await;
        tracing::info!(scanned, version = last.version, "membership change done");
        let mut lines = show(&last);
        lines.push(format!("rescanned {scanned} keys"));
        if !failed.is_empty() {
            lines.push(format!("not yet told (they stay joint, which is safe): {}", failed.join("; ")));
        }
        Ok(lines)
    }
}

pub(super) fn show(config: &Config) -> Vec<String> {
    let mut lines = vec![format!("version {}", config.version)];
    lines.extend(config.members.iter().map(|m| format!("member {} {}", m.id, m.peer_addr)));
    if let Some(previous) = &config.previous {
        lines.extend(previous.iter().map(|m| format!("previous {} {}", m.id, m.peer_addr)));
    }
    lines
}

/// The most a pushed configuration's version may pass the installed one's. A change takes two
/// versions and a node that was down or is new may have missed many, but never billions: a
/// version near `u64::MAX` (one message from a buggy or compromised peer) would leave no room
/// for the next change.
pub const MAX_VERSION_STEP: u64 = 1 << 32;

/// Whether `config`, pushed by a peer, could have come from a membership change of a cluster
/// at `current`: members and (during a change) previous members are non-empty and unique,
/// and the version moves forward by a plausible step. An empty member list would stop every
/// write on every node, for good.
pub fn check_pushed(config: &Config, current: &Config) -> Result<()> {
    let unique = |ms: &[Member]| {
        let mut ids: Vec<u32> = ms.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        !ms.is_empty() && ids.len() == ms.len()
    };
    if !unique(&config.members) || config.previous.as_deref().is_some_and(|p| !unique(p)) {
        return Err(Error::Peer("a configuration without members, or with a member twice".into()));
    }
    if config.version > current.version.saturating_add(MAX_VERSION_STEP) {
        return Err(Error::Peer(format!(
            "a configuration version {} too far past the installed {}",
            config.version, current.version
        )));
    }
    Ok(())
}

#[cfg(test)]
mod pushed_tests {
    use super::*;

    fn config(version: u64, ids: &[u32], previous: Option<&[u32]>) -> Config {
        let members = |ids: &[u32]| ids.iter().map(|&id| Member { id, peer_addr: format!("h{id}:1") }).collect();
        Config { version, members: members(ids), previous: previous.map(members), highest_id: 3, ..Config::default() }
    }

    #[test]
    fn a_configuration_no_change_could_make_is_refused() {
        let current = config(4, &[1, 2, 3], None);
        assert!(check_pushed(&config(5, &[1, 2], Some(&[1, 2, 3])), &current).is_ok());
        assert!(check_pushed(&config(40, &[1, 2], None), &current).is_ok(), "a node that missed changes");
        assert!(check_pushed(&config(5, &[], None), &current).is_err(), "no members");
        assert!(check_pushed(&config(5, &[1, 1, 2], None), &current).is_err(), "a member twice");
        assert!(check_pushed(&config(5, &[1, 2], Some(&[])), &current).is_err(), "no previous members");
        assert!(check_pushed(&config(u64::MAX, &[1, 2, 3], None), &current).is_err(), "the version exhausted");
    }
}

//! A follower's side of a snapshot transfer: the chunks a leader sends, written to a file,
//! checked whole, and only then handed to openraft to install.
//!
//! openraft 0.9's own receiver (`Raft::install_snapshot`) hands the last chunk's file straight
//! to the core, which takes the snapshot as installed — its committed index, its membership,
//! a purge of the log it covers — before the state machine has read a byte of it; a failure
//! of the state machine's install is then a `StorageError`, fatal to openraft (its state
//! machine worker quits and the core stops), and here worse: the log store's purge waits for
//! the snapshot to be durable (see [`super::log`]), so the core waited for ever and the node
//! answered nothing until it was restarted. A transfer that arrived damaged or cut short is
//! not a failing disk. So this receiver does what openraft's does, chunk by chunk, and at
//! the last one checks and loads the file ([`SnapshotFile::check`]) *before* openraft sees
//! it. A file that fails is refused to the leader, and the follower goes on from its own
//! state: first as a transfer that went wrong (a snapshot "mismatch", expecting its first
//! byte), which openraft's leader sends again from the start at once, from the same copy; if
//! that copy fails too, as a remote storage error, which openraft's leader takes as the
//! follower unreachable: it pauses (its network's backoff) and then sends its snapshot
//! afresh — a newer one once it has built one, so a leader whose own file is damaged does not
//! send the same bytes for ever.
//!
//! One reception at a time: the lock taken for a chunk is held, at the last one, until the
//! install is done, so a new transfer never writes the file one being installed still reads.
//! The check and the install go on in a task of their own: a leader that stops waiting (its
//! call timed out on a large snapshot) does not undo them, and its next attempt finds the
//! snapshot installed ("not newer than what is committed") instead of a check cut off half
//! way, again and again.

// openraft's errors are large by design.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use openraft::error::{Fatal, InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse};
use openraft::{ErrorSubject, ErrorVerb, Raft, Snapshot, SnapshotSegmentId, StorageError, Vote};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::snapshot::SnapshotFile;
use super::types::{NodeId, TypeConfig};

type Reply = Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>;

/// The transfer being received.
struct Reception {
    /// The leader's id of the snapshot.
    id: String,
    /// The file it is written to (from the state machine's `begin_receiving_snapshot`).
    file: Box<SnapshotFile>,
}

/// What the receiver keeps between chunks.
#[derive(Default)]
struct Receiving {
    /// The transfer in progress.
    reception: Option<Reception>,
    /// The id of the last snapshot refused: refused again, the leader's copy is suspect.
    refused: Option<String>,
}

/// Receives snapshots for one node (one reception at a time).
#[derive(Clone, Default)]
pub(super) struct SnapshotReceiver {
    receiving: Arc<tokio::sync::Mutex<Receiving>>,
}

/// A storage error about the snapshot of `request`, as openraft reports one of its receiver.
fn refused(
    request: &InstallSnapshotRequest<TypeConfig>,
    verb: ErrorVerb,
    e: std::io::Error,
) -> RaftError<NodeId, InstallSnapshotError> {
    let subject = ErrorSubject::Snapshot(Some(request.meta.signature()));
    RaftError::Fatal(Fatal::StorageError(StorageError::from_io_error(subject, verb, e)))
}

/// Asks the leader to send the snapshot of `request` again from its first byte: openraft's
/// leader does so at once, within the same transfer (heartbeats go on meanwhile).
fn start_again(request: &InstallSnapshotRequest<TypeConfig>) -> RaftError<NodeId, InstallSnapshotError> {
    let segment = |offset| SnapshotSegmentId { id: request.meta.snapshot_id.clone(), offset };
    let mismatch = SnapshotMismatch { expect: segment(0), got: segment(request.offset) };
    RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch))
}

impl SnapshotReceiver {
    /// Takes one chunk of a leader's snapshot; at the last one, checks the whole file and has
    /// openraft install it.
    pub(super) async fn receive(&self, raft: &Raft<TypeConfig>, request: InstallSnapshotRequest<TypeConfig>) -> Reply {
        // A chunk is word from the leader, as a heartbeat is: openraft's leader sends none to a
        // follower it is sending a snapshot to, and a chunk alone does not reach openraft's
        // election timer. A chunk from a leader this node no longer follows is answered with
        // the newer vote.
        if let Some(vote) = heartbeat(raft, request.vote).await? {
            return Ok(InstallSnapshotResponse { vote });
        }
        let answer = InstallSnapshotResponse { vote: request.vote };
        let mut receiving = self.receiving.clone().lock_owned().await;
        let reception = &mut receiving.reception;
        if reception.as_ref().map(|r| r.id.as_str()) != Some(request.meta.snapshot_id.as_str()) {
            if request.offset != 0 {
                // The start of this transfer went to an earlier one, or to this node before it
                // restarted.
                return Err(start_again(&request));
            }
            // Through the state machine's worker: after any install queued before it.
            let file = raft.begin_receiving_snapshot().await.map_err(|e| match e {
                RaftError::Fatal(fatal) => RaftError::Fatal(fatal),
                RaftError::APIError(never) => match never {},
            })?;
            *reception = Some(Reception { id: request.meta.snapshot_id.clone(), file });
        }
        let Some(Reception { file, .. }) = reception.as_mut() else { unreachable!("a reception was just begun") };
        let written = async {
            file.seek(std::io::SeekFrom::Start(request.offset)).await?;
            file.write_all(&request.data).await
        };
        if let Err(e) = written.await {
            *reception = None;
            return Err(refused(&request, ErrorVerb::Write, e));
        }
        if !request.done {
            return Ok(answer);
        }
        let Some(Reception { file, .. }) = receiving.reception.take() else { unreachable!("the reception written to") };
        let raft = raft.clone();
        // On a task of its own, holding the lock: see the module's doc.
        let installing = tokio::spawn(async move {
            let id = request.meta.snapshot_id.clone();
            let refused_before = receiving.refused.as_ref() == Some(&id);
            let reply = install(&raft, request, file, refused_before).await;
            if let Err(RaftError::APIError(_) | RaftError::Fatal(Fatal::StorageError(_))) = &reply {
                receiving.refused = Some(id);
            }
            reply
        });
        match installing.await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!("installing a snapshot failed: {e}");
                Err(RaftError::Fatal(Fatal::Panicked))
            }
        }
    }
}

/// Passes word from the leader whose vote is `vote` to openraft, as its heartbeat would: an
/// append of nothing, from a leader that knows nothing of this node's log (no log id, no commit
/// index). Returns the newer vote this node holds instead, if it does.
async fn heartbeat(raft: &Raft<TypeConfig>, vote: Vote<NodeId>) -> Result<Option<Vote<NodeId>>, Fatal<NodeId>> {
    let nothing = AppendEntriesRequest { vote, prev_log_id: None, leader_commit: None, entries: vec![] };
    match raft.append_entries(nothing).await {
        Ok(AppendEntriesResponse::HigherVote(newer)) => Ok(Some(newer)),
        Ok(_) => Ok(None),
        Err(RaftError::Fatal(fatal)) => Err(fatal),
        Err(RaftError::APIError(never)) => match never {},
    }
}

/// Checks the file of `request`'s snapshot and has openraft install it, unless openraft has
/// committed as far already (it would not install it: a leader's second attempt after its
/// call timed out finds it so). A file that fails its checks is refused: the first time as a
/// transfer to start again, which openraft's leader does at once, with the same copy; when
/// that copy was refused before (`refused_before`), as a storage error, after which the leader
/// pauses and sends its snapshot afresh — a newer one, if it has built one since.
async fn install(
    raft: &Raft<TypeConfig>,
    request: InstallSnapshotRequest<TypeConfig>,
    mut file: Box<SnapshotFile>,
    refused_before: bool,
) -> Reply {
    let committed = raft.with_raft_state(|state| state.committed).await.map_err(RaftError::Fatal)?;
    if request.meta.last_log_id > committed {
        let meta = request.meta.clone();
        let mut checking = tokio::task::spawn_blocking(move || file.check(&meta).map(|()| file));
        // The check takes seconds for millions of keys, and the leader's transfer is not over
        // until it is: its word goes on meanwhile, or this node would stand for election.
        let mut following = true;
        let checked = loop {
            tokio::select! {
                checked = &mut checking => break checked,
                () = tokio::time::sleep(super::node::HEARTBEAT), if following => {
                    following = heartbeat(raft, request.vote).await.map_err(RaftError::Fatal)?.is_none();
                }
            }
        };
        file = match checked {
            Ok(Ok(file)) => file,
            Ok(Err(e)) => {
                tracing::warn!(snapshot = %request.meta.snapshot_id, "refusing a snapshot from the leader: {e}");
                if refused_before {
                    return Err(refused(&request, ErrorVerb::Read, e));
                }
                return Err(start_again(&request));
            }
            Err(e) => return Err(refused(&request, ErrorVerb::Read, std::io::Error::other(e))),
        };
    }
    let snapshot = Snapshot { meta: request.meta, snapshot: file };
    let installed = raft.install_full_snapshot(request.vote, snapshot).await.map_err(RaftError::Fatal)?;
    Ok(installed.into())
}

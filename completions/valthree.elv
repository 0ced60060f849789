
use builtin;
use str;

set edit:completion:arg-completer[valthree] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'valthree'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'valthree'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand serve 'Serve the Redis protocol in one of the consistency modes'
            cand workload 'Drive many clients against Redis-protocol servers and record the history'
            cand cluster 'Run a local cluster and inject faults into it'
            cand backup 'Write the whole keyspace to a Redis RDB file (s3, raft: one point in time; paxos, dynamo: key by key)'
            cand restore 'Load a Redis RDB file''s string keys (other types are skipped and counted)'
            cand check-history 'Check a recorded history for linearizability'
            cand demo 'Run a narrated, self-checking demo of a mechanism on a local cluster'
            cand paxos-compact-ballots 'Rewrite a stopped paxos cluster''s ballots to their ranks (order kept), giving back the room a forged ballot took'
            cand s3-check 'Check that an S3 server''s conditional PUTs hold under a race, as s3 mode needs'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'valthree;serve'= {
            cand --mode 'How the cluster keeps itself consistent'
            cand --addr 'Address to serve the Redis protocol on'
            cand --data-dir 'Directory for this node''s data (in s3 mode without --s3-bucket: the embedded object store)'
            cand --log-format 'The log''s format on stderr: text, or JSON lines (with `node` and `mode` on each)'
            cand --metrics-addr 'Serve /metrics (Prometheus), /livez and /readyz over HTTP on this address (e.g. 127.0.0.1:9121); off unless given'
            cand --requirepass 'Require clients to AUTH with this password'
            cand --requirepass-file 'Read the password from this file instead (one line)'
            cand --maxclients 'Refuse connections beyond this many'
            cand --admin-token 'Enables the VALTHREE.FAULT admin command (partitions for testing) for holders of this token'
            cand --admin-token-file 'Read the admin token from this file instead (one line)'
            cand --proto-max-bulk-len 'Longest bulk string a client may send (bytes; k, kb, m, mb, g, gb suffixes accepted)'
            cand --maxmemory-clients 'The bytes all clients'' query and output buffers may hold together. A request or reply that would pass it first evicts (closes) the clients holding the most unsent output that received less than 64 KiB of it, or a thirtieth of what waits, in the last 2 s; failing that, a request gets an error and is closed, a reply is refused (0: no limit)'
            cand --client-output-buffer-limit 'Redis'' normal-class `client-output-buffer-limit`: "HARD SOFT SECONDS" (a leading `normal` is accepted). A reply that would leave more than HARD bytes unsent is not queued; a client with more than SOFT bytes unsent that reads none of them for SECONDS is closed (0: no limit)'
            cand --tls-port 'Also serve TLS clients on this address (e.g. 127.0.0.1:6380); needs --tls-cert-file and --tls-key-file'
            cand --tls-cert-file 'The server''s certificate chain (PEM)'
            cand --tls-key-file 'The server''s private key (PEM)'
            cand --tls-ca-cert-file 'Certificates of the CAs that sign client certificates (PEM)'
            cand --tls-auth-clients 'Whether clients must show a certificate signed by --tls-ca-cert-file (default: yes when a CA file is given, as in Redis; no otherwise)'
            cand --timeout 'Close a client idle for this many seconds (0: never), as Redis'' `timeout`'
            cand --shutdown-timeout 'On SIGTERM or SIGINT: how long to finish the commands in flight and hand over (raft: leadership; dynamo: pending hints) before the node stops; what is left then is cut off (commands) or kept on disk (hints), and the last log line says which'
            cand --snapshot-walk-timeout 'End a backup''s snapshot walk (VALTHREE.SNAPSHOT) idle for this many seconds, letting go of the keyspace version it holds'
            cand --s3-endpoint 's3 mode: S3-compatible endpoint URL (e.g. http://127.0.0.1:9000); AWS when omitted'
            cand --s3-bucket 's3 mode: bucket holding the database (created if missing); without it the embedded local object store in --data-dir is used'
            cand --s3-region 's3 mode: region'
            cand --s3-access-key 's3 mode: access key (default: the usual AWS credential chain)'
            cand --s3-secret-key 's3 mode: secret key'
            cand --s3-dir 's3 mode: directory of the embedded object store, shared by every node of a local cluster (default: --data-dir)'
            cand --s3-key 's3 mode: object key of the database document'
            cand --s3-batch 's3 mode: group commit (one conditional PUT for all writes queued at once)'
            cand --s3-value-objects-from 's3 mode: values this large or larger are stored once as objects of their own, and the document holds a reference (0: every value stays in the document)'
            cand --maxmemory 's3 mode: the most bytes the keys and values may hold together; a write that would grow them past it answers -OOM, as Redis does past its maxmemory (0: no limit)'
            cand --s3-snapshot-keys 's3 mode: the most keys the document holds over its snapshot before the whole keyspace is written as a new one (tests set it low to exercise snapshots on small databases)'
            cand --node-id 'paxos, raft and dynamo modes: this node''s id (1, 2, ...)'
            cand --peer-addr 'paxos, raft and dynamo modes: where peers reach this node (node-to-node gRPC)'
            cand --peer-listen 'paxos, raft and dynamo modes: where the peer server listens, when not at --peer-addr (which is then only what peers are told): e.g. `0.0.0.0:7379` in a container whose name is its --peer-addr'
            cand --peers 'paxos, raft and dynamo modes: the initial members, `1=host:port,2=host:port,...` (this node included); used only on first start: later the configuration stored in --data-dir wins. Omitted: a one-node cluster'
            cand --cluster-secret-file 'paxos, raft and dynamo modes: a file holding the cluster secret every peer call must show (or set VALTHREE_CLUSTER_SECRET; never on the command line). Required when --peer-addr is reachable from other hosts'
            cand --peer-tls-cert 'paxos, raft and dynamo modes: mutual TLS on the peer plane: this node''s certificate (PEM; it must name the host or IP of --peer-addr) ...'
            cand --peer-tls-key '... its private key ...'
            cand --peer-tls-ca '... and the CA that signs every node''s certificate'
            cand --fault-fs 'Testing only (every mode): `lazy` keeps every write not yet fsync''d inside the process, so a SIGKILL loses what a power cut would (`valthree cluster up --fault-fs lazy`)'
            cand --paxos-one-rtt 'paxos mode: the one-round-trip optimisation (an accept also promises the next ballot)'
            cand --paxos-gc-interval 'paxos mode: how often tombstones of deleted keys are garbage-collected (0s: never)'
            cand --unsafe-accept-quorum 'Test only: accept a paxos value after this many acknowledgements (breaks quorum intersection, so the checker has a bug to catch)'
            cand --raft-snapshot-every 'raft mode: log entries between snapshots (the log is then purged but for a quarter of that)'
            cand --raft-forward-batch 'raft mode: a follower forwards the writes queued at once to the leader in one peer call (off, the default: one call per write)'
            cand --vnodes 'dynamo mode: partitions of the ring (a power of two)'
            cand --replicas 'dynamo mode: copies of every key, N (default: 3, or the number of nodes if fewer)'
            cand --r 'dynamo mode: replicas a read waits for, R (default: 2, or N if smaller)'
            cand --w 'dynamo mode: replicas a write waits for, W (default: 2, or N if smaller)'
            cand --read-repair 'dynamo mode: read repair in the background (async), before the read answers (sync), or none (off: anti-entropy alone converges replicas)'
            cand --hinted-handoff 'dynamo mode: hinted handoff (a write an owner missed is replayed to it when it is back)'
            cand --max-hints 'dynamo mode: hints kept at most; past it new ones are dropped (and counted in INFO)'
            cand --hint-window 'dynamo mode: hints older than this are dropped unreplayed'
            cand --sibling-read 'dynamo mode: what GET answers for a key with several siblings: the latest one (pick) or -CONFLICT'
            cand --max-siblings 'dynamo mode: a write that would leave a key with more siblings than this is refused (-CONFLICT: resolve them with VGET then VSET under the context read, or a plain SET)'
            cand --swim-period 'dynamo mode: how often the failure detector (SWIM) probes a member'
            cand --aae-interval 'dynamo mode: how often anti-entropy compares every partition with each co-owner''s (0: never)'
            cand --aae-max-keys 'dynamo mode: keys one anti-entropy exchange repairs at most (the next starts at once if more differ)'
            cand --tombstone-grace 'dynamo mode: how old a tombstone every owner holds must be before it is deleted for good'
            cand --handoff-grace 'dynamo mode: how long a node keeps a partition it no longer holds after a membership change before it hands it over once more and deletes its copy'
            cand --suspect-timeout 'dynamo mode: how long a member that failed a probe stays SUSPECT before it is DEAD'
            cand --json 'Log as JSON lines: `--log-format json`, by its older name'
            cand -v 'More log output (-v debug, -vv trace); RUST_LOG overrides'
            cand --verbose 'More log output (-v debug, -vv trace); RUST_LOG overrides'
            cand --unsafe-trust-object-store 's3 mode: serve on a bucket even if its server fails the start-up check of conditional PUTs (`valthree s3-check`), trusting it blindly: on a server whose conditional PUT is not atomic, concurrent writes can be lost and s3 mode is NOT linearizable'
            cand --unsafe-stale-reads 'Test only: answer some reads from a stale snapshot, so the checker has a bug to catch'
            cand --unsafe-blind-cas 'Test only: SET … IFEQ writes without comparing, so the checker has a broken compare-and-set to catch'
            cand --join 'paxos, raft and dynamo modes: start with no configuration and wait to be added by a member (`valthree cluster add-node` or `VALTHREE.MEMBERS ADD`)'
            cand --unsafe-skip-fsync 'Testing only, a planted bug (every mode): skip every fsync of the write path. Caught by the power-loss nemesis with `--fault-fs lazy`'
            cand --unsafe-no-ballot-ceiling 'Test only: take peers'' ballots up to 2^62 whatever the clock says (see `Ballot::ceiling`), as nodes before the ceiling did, so a test can build the state a forged ballot left on such a cluster'
            cand --stale-reads 'raft mode: answer reads from this node''s state machine without asking the leader — faster, but a read may miss recent writes (NOT linearizable)'
            cand --sloppy-quorum 'dynamo mode: let live nodes past a key''s preference list stand in for its down owners and count toward W (they hand the write over when the owner is back). Keeps writes available, but R + W > N no longer promises read-your-writes'
            cand --unsafe-lww 'Test only: dynamo mode keeps one value per key, the latest by timestamp (a concurrent write is silently lost), so the checker has a bug to catch'
            cand --unsafe-server-clocks 'Test only: dynamo mode with per-server plain vector clocks instead of dotted ones'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;workload'= {
            cand --addrs 'Comma-separated addresses; client i talks to addrs[i % n] (default: the nodes of --cluster, or 127.0.0.1:6379)'
            cand --cluster 'A local cluster''s directory (from `valthree cluster up`): its nodes are the addresses, and the nemesis acts on it'
            cand --docker 'Containers on a Docker network that are the nodes (comma-separated names): the nemesis acts on them with `docker kill/start`, `pause/unpause` and `network disconnect/connect` (give the addresses with --addrs)'
            cand --docker-network 'With --docker: the network a partition disconnects a container from'
            cand --nemesis 'Faults to inject while the workload runs (comma-separated; needs --cluster or --docker): kill, pause, power-loss (each on one node, a minority, a majority, all, or the primary, drawn from the seed; power-loss needs a local cluster up with --fault-fs lazy), partition (a shape drawn from the seed: one, halves, ring, bridge, one-way; dropping messages), packet (call-level delay, loss, duplication, reordering on the peer plane; local clusters), membership (a node joins, then leaves; local clusters), disk (EIO or ENOSPC on one node''s writes or fsyncs; local clusters), clock (one node''s wall clock bumped or strobed, then reset; local clusters), or all (every kind the cluster supports: power-loss only when it is up with --fault-fs lazy, membership not in s3 mode)'
            cand --nemesis-interval 'Time between two faults; each lasts half of it'
            cand --clients 'Concurrent clients, each with one operation outstanding at a time'
            cand --keys 'Size of the key set (small means contention, which is the point)'
            cand --duration 'Run for this long (e.g. 30s); the default when --ops is not given is 10s'
            cand --ops 'Run this many operations in all'
            cand --key-prefix 'Name keys `{PREFIX}k0`, `{PREFIX}k1`, ... and skip the opening FLUSHALL (keys no one used start absent): several workloads can then run against one cluster at once'
            cand --seed 'Seed of the operation streams: the same seed gives the same invocations (a cas expects what its client read, which the run decides)'
            cand --history 'Where to write the JSONL history'
            cand --mix 'Relative weights of the operations [default: against valthree''s s3, paxos and raft modes get=3,set=2,del=1,incr=1,append=1,cas=2,getdel=1,getset=1 (cas: SET IFEQ with the value the client last read); against dynamo mode vget=3,vset=2,vdel=1 (VGET WITHDOTS, and VSET/VDEL under the context the client last saw); against other servers get=3,set=2,del=1,incr=1,append=1]'
            cand --timeout 'Per-operation client-side timeout; a timed-out operation is recorded as indeterminate'
            cand --html 'With --check, also write the HTML timeline here'
            cand --check-timeout 'With --check, the checker''s time limit'
            cand --settle-timeout 'Against dynamo mode: how long, after the run, the owners of the keys get to agree before their replicas are recorded for the convergence check. Each owner''s own replica is read, which repairs nothing: only anti-entropy and hinted handoff converge them, so give it more than the nodes'' --aae-interval'
            cand --ready-timeout 'Wait this long for every address to answer PING before starting (0s: start at once)'
            cand --check 'Check the history at the end and exit as `check-history` does (below): for linearizability, or against dynamo mode, for what dynamo promises (`check-history --model dynamo`). (A run without --key-prefix starts with FLUSHALL, recorded in the history: point it at a test database; against dynamo mode a run without one uses fresh keys instead.)'
            cand --json 'Print the summary (and verdict) as JSON; no progress bar'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand up 'Start N nodes in the background and wait until each answers PING'
            cand status 'Show each node: up, paused or down, and what it reports of itself'
            cand kill 'SIGKILL a node'
            cand power-loss 'Cut a node''s power: SIGKILL of a node started with `--fault-fs lazy`, losing every write it had not fsync''d (`restart` brings it back)'
            cand pause 'SIGSTOP a node'
            cand resume 'SIGCONT a paused node'
            cand restart 'Restart a node with the same flags and data'
            cand rolling-restart 'Restart every node in turn without downtime: SIGTERM (a raft leader hands its leadership over first; raft followers go first, the leader last), wait for it to end, start it with the same flags and data, and go on once it answers VALTHREE.HEALTH (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s'
            cand partition 'Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic only). Cut links drop calls, as a real network does: a caller waits for its deadline or its connection''s keepalive (1 s). In s3 mode the nodes outside the largest group lose the object store (on a tie, the last group keeps it)'
            cand packet 'Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and reply delayed, lost, a request duplicated or overtaken by the next; on every link, or on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them'
            cand heal 'Restore all node-to-node traffic: end the partition and the packet faults'
            cand clock 'Skew a node''s wall clock (testing): its timestamps, tombstone ages and hint windows read the skewed clock; timeouts and timers run on the monotonic clock and are not moved. A restart resets it'
            cand add-node 'paxos, raft and dynamo modes: start one more node (empty) and add it to the membership while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a learner that catches up, then a voter; dynamo: it claims an even share of partitions, filled as a pending replica before the ring changes)'
            cand remove-node 'paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its partitions have moved to the others), then stop it and delete its data'
            cand down 'Stop every node (SIGTERM, then SIGKILL after a grace period)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'valthree;cluster;up'= {
            cand --mode 'mode'
            cand --nodes 'nodes'
            cand --base-port 'Node i serves clients on base+i and peers on base+1000+i (metrics on base+2000+i)'
            cand --port-offset 'Peer ports are client ports plus this, metrics ports plus twice this (at least --nodes)'
            cand --fault-fs 'Testing: `lazy` starts every node with a file layer that keeps each write not yet fsync''d inside the process, so that `power-loss` (a SIGKILL) loses what a power cut would'
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;status'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;kill'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;power-loss'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;pause'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;resume'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;restart'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;rolling-restart'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;partition'= {
            cand --shape 'A shape instead of groups, its members drawn from `--seed`: one (a node cut off), halves (a minority and a majority), ring (each node sees a different majority), bridge (two halves joined through one node), one-way (a node that cannot reach the others but they reach it, or the reverse). s3 mode: one and halves'
            cand --seed 'The seed that picks a shape''s members'
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --refuse 'Refuse calls at once on both sides instead of dropping them (fail-fast, for tests; not with one-way cuts)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;packet'= {
            cand --delay 'Added to each request and reply, in milliseconds'
            cand --jitter 'Up to this many more milliseconds, drawn for each message'
            cand --loss 'The chance (0 to 1) that a request, or its reply, is lost'
            cand --duplicate 'The chance (0 to 1) that a request is delivered twice'
            cand --reorder 'The chance (0 to 1) that a request is held back until the next one on its link has left'
            cand --seed 'Seeds the draws'
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;heal'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;clock'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand bump 'Move it by MS milliseconds (negative: back), on top of any earlier bump'
            cand strobe 'Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS'
            cand reset 'Back to the host''s clock'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'valthree;cluster;clock;bump'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;clock;strobe'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;clock;reset'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;clock;help'= {
            cand bump 'Move it by MS milliseconds (negative: back), on top of any earlier bump'
            cand strobe 'Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS'
            cand reset 'Back to the host''s clock'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'valthree;cluster;clock;help;bump'= {
        }
        &'valthree;cluster;clock;help;strobe'= {
        }
        &'valthree;cluster;clock;help;reset'= {
        }
        &'valthree;cluster;clock;help;help'= {
        }
        &'valthree;cluster;add-node'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;remove-node'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;down'= {
            cand --dir 'The cluster''s directory (state file, node data, logs)'
            cand --purge 'Also delete the cluster''s directory'
            cand --json 'Print JSON for scripts'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;cluster;help'= {
            cand up 'Start N nodes in the background and wait until each answers PING'
            cand status 'Show each node: up, paused or down, and what it reports of itself'
            cand kill 'SIGKILL a node'
            cand power-loss 'Cut a node''s power: SIGKILL of a node started with `--fault-fs lazy`, losing every write it had not fsync''d (`restart` brings it back)'
            cand pause 'SIGSTOP a node'
            cand resume 'SIGCONT a paused node'
            cand restart 'Restart a node with the same flags and data'
            cand rolling-restart 'Restart every node in turn without downtime: SIGTERM (a raft leader hands its leadership over first; raft followers go first, the leader last), wait for it to end, start it with the same flags and data, and go on once it answers VALTHREE.HEALTH (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s'
            cand partition 'Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic only). Cut links drop calls, as a real network does: a caller waits for its deadline or its connection''s keepalive (1 s). In s3 mode the nodes outside the largest group lose the object store (on a tie, the last group keeps it)'
            cand packet 'Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and reply delayed, lost, a request duplicated or overtaken by the next; on every link, or on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them'
            cand heal 'Restore all node-to-node traffic: end the partition and the packet faults'
            cand clock 'Skew a node''s wall clock (testing): its timestamps, tombstone ages and hint windows read the skewed clock; timeouts and timers run on the monotonic clock and are not moved. A restart resets it'
            cand add-node 'paxos, raft and dynamo modes: start one more node (empty) and add it to the membership while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a learner that catches up, then a voter; dynamo: it claims an even share of partitions, filled as a pending replica before the ring changes)'
            cand remove-node 'paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its partitions have moved to the others), then stop it and delete its data'
            cand down 'Stop every node (SIGTERM, then SIGKILL after a grace period)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'valthree;cluster;help;up'= {
        }
        &'valthree;cluster;help;status'= {
        }
        &'valthree;cluster;help;kill'= {
        }
        &'valthree;cluster;help;power-loss'= {
        }
        &'valthree;cluster;help;pause'= {
        }
        &'valthree;cluster;help;resume'= {
        }
        &'valthree;cluster;help;restart'= {
        }
        &'valthree;cluster;help;rolling-restart'= {
        }
        &'valthree;cluster;help;partition'= {
        }
        &'valthree;cluster;help;packet'= {
        }
        &'valthree;cluster;help;heal'= {
        }
        &'valthree;cluster;help;clock'= {
            cand bump 'Move it by MS milliseconds (negative: back), on top of any earlier bump'
            cand strobe 'Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS'
            cand reset 'Back to the host''s clock'
        }
        &'valthree;cluster;help;clock;bump'= {
        }
        &'valthree;cluster;help;clock;strobe'= {
        }
        &'valthree;cluster;help;clock;reset'= {
        }
        &'valthree;cluster;help;add-node'= {
        }
        &'valthree;cluster;help;remove-node'= {
        }
        &'valthree;cluster;help;down'= {
        }
        &'valthree;cluster;help;help'= {
        }
        &'valthree;backup'= {
            cand --addrs 'Comma-separated addresses of the nodes (default: the nodes of --cluster, or 127.0.0.1:6379). The client password is the cluster''s, or $REDISCLI_AUTH'
            cand --cluster 'A local cluster''s directory (from `valthree cluster up`)'
            cand --connections 'Connections working at once (a restore''s writes; a key-by-key backup''s reads). Default: what suits the mode (restore: 8 in s3 and raft mode, which write MSETs; 128 in dynamo mode, which writes key by key, and 48 in paxos mode, each with a connection to every node to write each key at its home; backup: 32, 8 in paxos mode, whose reads are rounds that write the value back)'
            cand --json 'Print the report as JSON; no progress bar'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;restore'= {
            cand --addrs 'Comma-separated addresses of the nodes (default: the nodes of --cluster, or 127.0.0.1:6379). The client password is the cluster''s, or $REDISCLI_AUTH'
            cand --cluster 'A local cluster''s directory (from `valthree cluster up`)'
            cand --connections 'Connections working at once (a restore''s writes; a key-by-key backup''s reads). Default: what suits the mode (restore: 8 in s3 and raft mode, which write MSETs; 128 in dynamo mode, which writes key by key, and 48 in paxos mode, each with a connection to every node to write each key at its home; backup: 32, 8 in paxos mode, whose reads are rounds that write the value back)'
            cand --replace 'Restore into a database that already holds keys: the file''s keys overwrite theirs, other keys stay'
            cand --json 'Print the report as JSON; no progress bar'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;check-history'= {
            cand --model 'The model of what each key may do [default: dynamo for a history of dynamo mode, else register]'
            cand --html 'Also write a self-contained HTML timeline here'
            cand --timeout 'Give up (verdict unknown, exit 2) after this long, e.g. 60s, 5m'
            cand --json 'Print a machine-readable verdict'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;demo'= {
            cand --dir 'Where the demo''s clusters live [default: a fresh temporary directory]'
            cand --base-port 'Node i listens on base+i (peers on base+1000+i)'
            cand --pace 'Seconds to pause between steps, 0 to 10 [default: 1 on a terminal, 0 otherwise]'
            cand --serve-flag 'Extra `valthree serve` flags for every node (e.g. a broken configuration, to see a claim fail)'
            cand --keep 'Leave the cluster running at the end (with the commands to explore and remove it)'
            cand --json 'A machine-readable log of the steps and checks instead of the narration'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;paxos-compact-ballots'= {
            cand --data-dir 'A member''s node id and data directory, `ID=DIR`; once per member'
            cand --dry-run 'Report what would be rewritten, change nothing'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;s3-check'= {
            cand --s3-endpoint 's3 mode: S3-compatible endpoint URL (e.g. http://127.0.0.1:9000); AWS when omitted'
            cand --s3-bucket 's3 mode: bucket holding the database (created if missing); without it the embedded local object store in --data-dir is used'
            cand --s3-region 's3 mode: region'
            cand --s3-access-key 's3 mode: access key (default: the usual AWS credential chain)'
            cand --s3-secret-key 's3 mode: secret key'
            cand --rounds 'Rounds of each race'
            cand --writers 'Concurrent writers in each round'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;help'= {
            cand serve 'Serve the Redis protocol in one of the consistency modes'
            cand workload 'Drive many clients against Redis-protocol servers and record the history'
            cand cluster 'Run a local cluster and inject faults into it'
            cand backup 'Write the whole keyspace to a Redis RDB file (s3, raft: one point in time; paxos, dynamo: key by key)'
            cand restore 'Load a Redis RDB file''s string keys (other types are skipped and counted)'
            cand check-history 'Check a recorded history for linearizability'
            cand demo 'Run a narrated, self-checking demo of a mechanism on a local cluster'
            cand paxos-compact-ballots 'Rewrite a stopped paxos cluster''s ballots to their ranks (order kept), giving back the room a forged ballot took'
            cand s3-check 'Check that an S3 server''s conditional PUTs hold under a race, as s3 mode needs'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'valthree;help;serve'= {
        }
        &'valthree;help;workload'= {
        }
        &'valthree;help;cluster'= {
            cand up 'Start N nodes in the background and wait until each answers PING'
            cand status 'Show each node: up, paused or down, and what it reports of itself'
            cand kill 'SIGKILL a node'
            cand power-loss 'Cut a node''s power: SIGKILL of a node started with `--fault-fs lazy`, losing every write it had not fsync''d (`restart` brings it back)'
            cand pause 'SIGSTOP a node'
            cand resume 'SIGCONT a paused node'
            cand restart 'Restart a node with the same flags and data'
            cand rolling-restart 'Restart every node in turn without downtime: SIGTERM (a raft leader hands its leadership over first; raft followers go first, the leader last), wait for it to end, start it with the same flags and data, and go on once it answers VALTHREE.HEALTH (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s'
            cand partition 'Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic only). Cut links drop calls, as a real network does: a caller waits for its deadline or its connection''s keepalive (1 s). In s3 mode the nodes outside the largest group lose the object store (on a tie, the last group keeps it)'
            cand packet 'Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and reply delayed, lost, a request duplicated or overtaken by the next; on every link, or on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them'
            cand heal 'Restore all node-to-node traffic: end the partition and the packet faults'
            cand clock 'Skew a node''s wall clock (testing): its timestamps, tombstone ages and hint windows read the skewed clock; timeouts and timers run on the monotonic clock and are not moved. A restart resets it'
            cand add-node 'paxos, raft and dynamo modes: start one more node (empty) and add it to the membership while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a learner that catches up, then a voter; dynamo: it claims an even share of partitions, filled as a pending replica before the ring changes)'
            cand remove-node 'paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its partitions have moved to the others), then stop it and delete its data'
            cand down 'Stop every node (SIGTERM, then SIGKILL after a grace period)'
        }
        &'valthree;help;cluster;up'= {
        }
        &'valthree;help;cluster;status'= {
        }
        &'valthree;help;cluster;kill'= {
        }
        &'valthree;help;cluster;power-loss'= {
        }
        &'valthree;help;cluster;pause'= {
        }
        &'valthree;help;cluster;resume'= {
        }
        &'valthree;help;cluster;restart'= {
        }
        &'valthree;help;cluster;rolling-restart'= {
        }
        &'valthree;help;cluster;partition'= {
        }
        &'valthree;help;cluster;packet'= {
        }
        &'valthree;help;cluster;heal'= {
        }
        &'valthree;help;cluster;clock'= {
            cand bump 'Move it by MS milliseconds (negative: back), on top of any earlier bump'
            cand strobe 'Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS'
            cand reset 'Back to the host''s clock'
        }
        &'valthree;help;cluster;clock;bump'= {
        }
        &'valthree;help;cluster;clock;strobe'= {
        }
        &'valthree;help;cluster;clock;reset'= {
        }
        &'valthree;help;cluster;add-node'= {
        }
        &'valthree;help;cluster;remove-node'= {
        }
        &'valthree;help;cluster;down'= {
        }
        &'valthree;help;backup'= {
        }
        &'valthree;help;restore'= {
        }
        &'valthree;help;check-history'= {
        }
        &'valthree;help;demo'= {
        }
        &'valthree;help;paxos-compact-ballots'= {
        }
        &'valthree;help;s3-check'= {
        }
        &'valthree;help;completions'= {
        }
        &'valthree;help;help'= {
        }
    ]
    $completions[$command]
}

# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_valthree_global_optspecs
    string join \n h/help V/version
end

function __fish_valthree_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_valthree_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_valthree_using_subcommand
    set -l cmd (__fish_valthree_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c valthree -n "__fish_valthree_needs_command" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_needs_command" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "serve" -d 'Serve the Redis protocol in one of the consistency modes'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "workload" -d 'Drive many clients against Redis-protocol servers and record the history'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "cluster" -d 'Run a local cluster and inject faults into it'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "backup" -d 'Write the whole keyspace to a Redis RDB file (s3, raft: one point in time; paxos, dynamo: key by key)'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "restore" -d 'Load a Redis RDB file\'s string keys (other types are skipped and counted)'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "check-history" -d 'Check a recorded history for linearizability'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "demo" -d 'Run a narrated, self-checking demo of a mechanism on a local cluster'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "paxos-compact-ballots" -d 'Rewrite a stopped paxos cluster\'s ballots to their ranks (order kept), giving back the room a forged ballot took'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "s3-check" -d 'Check that an S3 server\'s conditional PUTs hold under a race, as s3 mode needs'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c valthree -n "__fish_valthree_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l mode -d 'How the cluster keeps itself consistent' -r -f -a "s3\t'The whole database is one JSON object in S3-compatible storage, replaced by compare-and-swap'
paxos\t'CASPaxos: one replicated register per key'
raft\t'A Raft log replicated to a majority'
dynamo\t'A Dynamo-style ring: N replicas, R/W quorums, dotted version vectors, siblings'"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l addr -d 'Address to serve the Redis protocol on' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l data-dir -d 'Directory for this node\'s data (in s3 mode without --s3-bucket: the embedded object store)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l log-format -d 'The log\'s format on stderr: text, or JSON lines (with `node` and `mode` on each)' -r -f -a "text\t'One line of text per event'
json\t'One JSON object per line (tracing-subscriber\'s), with `node` and `mode` added'"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l metrics-addr -d 'Serve /metrics (Prometheus), /livez and /readyz over HTTP on this address (e.g. 127.0.0.1:9121); off unless given' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l requirepass -d 'Require clients to AUTH with this password' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l requirepass-file -d 'Read the password from this file instead (one line)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l maxclients -d 'Refuse connections beyond this many' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l admin-token -d 'Enables the VALTHREE.FAULT admin command (partitions for testing) for holders of this token' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l admin-token-file -d 'Read the admin token from this file instead (one line)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l proto-max-bulk-len -d 'Longest bulk string a client may send (bytes; k, kb, m, mb, g, gb suffixes accepted)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l maxmemory-clients -d 'The bytes all clients\' query and output buffers may hold together. A request or reply that would pass it first evicts (closes) the clients holding the most unsent output that received less than 64 KiB of it, or a thirtieth of what waits, in the last 2 s; failing that, a request gets an error and is closed, a reply is refused (0: no limit)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l client-output-buffer-limit -d 'Redis\' normal-class `client-output-buffer-limit`: "HARD SOFT SECONDS" (a leading `normal` is accepted). A reply that would leave more than HARD bytes unsent is not queued; a client with more than SOFT bytes unsent that reads none of them for SECONDS is closed (0: no limit)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l tls-port -d 'Also serve TLS clients on this address (e.g. 127.0.0.1:6380); needs --tls-cert-file and --tls-key-file' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l tls-cert-file -d 'The server\'s certificate chain (PEM)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l tls-key-file -d 'The server\'s private key (PEM)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l tls-ca-cert-file -d 'Certificates of the CAs that sign client certificates (PEM)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l tls-auth-clients -d 'Whether clients must show a certificate signed by --tls-ca-cert-file (default: yes when a CA file is given, as in Redis; no otherwise)' -r -f -a "yes\t'A client certificate is required'
optional\t'A client certificate is checked when given'
no\t'No client certificate is asked for'"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l timeout -d 'Close a client idle for this many seconds (0: never), as Redis\' `timeout`' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l shutdown-timeout -d 'On SIGTERM or SIGINT: how long to finish the commands in flight and hand over (raft: leadership; dynamo: pending hints) before the node stops; what is left then is cut off (commands) or kept on disk (hints), and the last log line says which' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l snapshot-walk-timeout -d 'End a backup\'s snapshot walk (VALTHREE.SNAPSHOT) idle for this many seconds, letting go of the keyspace version it holds' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-endpoint -d 's3 mode: S3-compatible endpoint URL (e.g. http://127.0.0.1:9000); AWS when omitted' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-bucket -d 's3 mode: bucket holding the database (created if missing); without it the embedded local object store in --data-dir is used' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-region -d 's3 mode: region' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-access-key -d 's3 mode: access key (default: the usual AWS credential chain)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-secret-key -d 's3 mode: secret key' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-dir -d 's3 mode: directory of the embedded object store, shared by every node of a local cluster (default: --data-dir)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-key -d 's3 mode: object key of the database document' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-batch -d 's3 mode: group commit (one conditional PUT for all writes queued at once)' -r -f -a "on\t''
off\t''"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-value-objects-from -d 's3 mode: values this large or larger are stored once as objects of their own, and the document holds a reference (0: every value stays in the document)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l maxmemory -d 's3 mode: the most bytes the keys and values may hold together; a write that would grow them past it answers -OOM, as Redis does past its maxmemory (0: no limit)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l s3-snapshot-keys -d 's3 mode: the most keys the document holds over its snapshot before the whole keyspace is written as a new one (tests set it low to exercise snapshots on small databases)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l node-id -d 'paxos, raft and dynamo modes: this node\'s id (1, 2, ...)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l peer-addr -d 'paxos, raft and dynamo modes: where peers reach this node (node-to-node gRPC)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l peer-listen -d 'paxos, raft and dynamo modes: where the peer server listens, when not at --peer-addr (which is then only what peers are told): e.g. `0.0.0.0:7379` in a container whose name is its --peer-addr' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l peers -d 'paxos, raft and dynamo modes: the initial members, `1=host:port,2=host:port,...` (this node included); used only on first start: later the configuration stored in --data-dir wins. Omitted: a one-node cluster' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l cluster-secret-file -d 'paxos, raft and dynamo modes: a file holding the cluster secret every peer call must show (or set VALTHREE_CLUSTER_SECRET; never on the command line). Required when --peer-addr is reachable from other hosts' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l peer-tls-cert -d 'paxos, raft and dynamo modes: mutual TLS on the peer plane: this node\'s certificate (PEM; it must name the host or IP of --peer-addr) ...' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l peer-tls-key -d '... its private key ...' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l peer-tls-ca -d '... and the CA that signs every node\'s certificate' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l fault-fs -d 'Testing only (every mode): `lazy` keeps every write not yet fsync\'d inside the process, so a SIGKILL loses what a power cut would (`valthree cluster up --fault-fs lazy`)' -r -f -a "off\t'In the kernel\'s page cache (pass-through): a SIGKILL loses none of them'
lazy\t'Inside the process until fsync: a SIGKILL loses what a power cut would'"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l paxos-one-rtt -d 'paxos mode: the one-round-trip optimisation (an accept also promises the next ballot)' -r -f -a "on\t''
off\t''"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l paxos-gc-interval -d 'paxos mode: how often tombstones of deleted keys are garbage-collected (0s: never)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l unsafe-accept-quorum -d 'Test only: accept a paxos value after this many acknowledgements (breaks quorum intersection, so the checker has a bug to catch)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l raft-snapshot-every -d 'raft mode: log entries between snapshots (the log is then purged but for a quarter of that)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l raft-forward-batch -d 'raft mode: a follower forwards the writes queued at once to the leader in one peer call (off, the default: one call per write)' -r -f -a "on\t''
off\t''"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l vnodes -d 'dynamo mode: partitions of the ring (a power of two)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l replicas -d 'dynamo mode: copies of every key, N (default: 3, or the number of nodes if fewer)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l r -d 'dynamo mode: replicas a read waits for, R (default: 2, or N if smaller)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l w -d 'dynamo mode: replicas a write waits for, W (default: 2, or N if smaller)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l read-repair -d 'dynamo mode: read repair in the background (async), before the read answers (sync), or none (off: anti-entropy alone converges replicas)' -r -f -a "async\t''
sync\t''
off\t'No read repair: anti-entropy alone converges replicas'"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l hinted-handoff -d 'dynamo mode: hinted handoff (a write an owner missed is replayed to it when it is back)' -r -f -a "on\t''
off\t''"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l max-hints -d 'dynamo mode: hints kept at most; past it new ones are dropped (and counted in INFO)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l hint-window -d 'dynamo mode: hints older than this are dropped unreplayed' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l sibling-read -d 'dynamo mode: what GET answers for a key with several siblings: the latest one (pick) or -CONFLICT' -r -f -a "pick\t'The latest sibling (timestamp, then dot); every sibling stays stored'
error\t'`-CONFLICT`: the client must read them with VGET'"
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l max-siblings -d 'dynamo mode: a write that would leave a key with more siblings than this is refused (-CONFLICT: resolve them with VGET then VSET under the context read, or a plain SET)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l swim-period -d 'dynamo mode: how often the failure detector (SWIM) probes a member' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l aae-interval -d 'dynamo mode: how often anti-entropy compares every partition with each co-owner\'s (0: never)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l aae-max-keys -d 'dynamo mode: keys one anti-entropy exchange repairs at most (the next starts at once if more differ)' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l tombstone-grace -d 'dynamo mode: how old a tombstone every owner holds must be before it is deleted for good' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l handoff-grace -d 'dynamo mode: how long a node keeps a partition it no longer holds after a membership change before it hands it over once more and deletes its copy' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l suspect-timeout -d 'dynamo mode: how long a member that failed a probe stays SUSPECT before it is DEAD' -r
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l json -d 'Log as JSON lines: `--log-format json`, by its older name'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -s v -l verbose -d 'More log output (-v debug, -vv trace); RUST_LOG overrides'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l unsafe-trust-object-store -d 's3 mode: serve on a bucket even if its server fails the start-up check of conditional PUTs (`valthree s3-check`), trusting it blindly: on a server whose conditional PUT is not atomic, concurrent writes can be lost and s3 mode is NOT linearizable'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l unsafe-stale-reads -d 'Test only: answer some reads from a stale snapshot, so the checker has a bug to catch'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l unsafe-blind-cas -d 'Test only: SET … IFEQ writes without comparing, so the checker has a broken compare-and-set to catch'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l join -d 'paxos, raft and dynamo modes: start with no configuration and wait to be added by a member (`valthree cluster add-node` or `VALTHREE.MEMBERS ADD`)'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l unsafe-skip-fsync -d 'Testing only, a planted bug (every mode): skip every fsync of the write path. Caught by the power-loss nemesis with `--fault-fs lazy`'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l unsafe-no-ballot-ceiling -d 'Test only: take peers\' ballots up to 2^62 whatever the clock says (see `Ballot::ceiling`), as nodes before the ceiling did, so a test can build the state a forged ballot left on such a cluster'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l stale-reads -d 'raft mode: answer reads from this node\'s state machine without asking the leader — faster, but a read may miss recent writes (NOT linearizable)'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l sloppy-quorum -d 'dynamo mode: let live nodes past a key\'s preference list stand in for its down owners and count toward W (they hand the write over when the owner is back). Keeps writes available, but R + W > N no longer promises read-your-writes'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l unsafe-lww -d 'Test only: dynamo mode keeps one value per key, the latest by timestamp (a concurrent write is silently lost), so the checker has a bug to catch'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -l unsafe-server-clocks -d 'Test only: dynamo mode with per-server plain vector clocks instead of dotted ones'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c valthree -n "__fish_valthree_using_subcommand serve" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l addrs -d 'Comma-separated addresses; client i talks to addrs[i % n] (default: the nodes of --cluster, or 127.0.0.1:6379)' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l cluster -d 'A local cluster\'s directory (from `valthree cluster up`): its nodes are the addresses, and the nemesis acts on it' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l docker -d 'Containers on a Docker network that are the nodes (comma-separated names): the nemesis acts on them with `docker kill/start`, `pause/unpause` and `network disconnect/connect` (give the addresses with --addrs)' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l docker-network -d 'With --docker: the network a partition disconnects a container from' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l nemesis -d 'Faults to inject while the workload runs (comma-separated; needs --cluster or --docker): kill, pause, power-loss (each on one node, a minority, a majority, all, or the primary, drawn from the seed; power-loss needs a local cluster up with --fault-fs lazy), partition (a shape drawn from the seed: one, halves, ring, bridge, one-way; dropping messages), packet (call-level delay, loss, duplication, reordering on the peer plane; local clusters), membership (a node joins, then leaves; local clusters), disk (EIO or ENOSPC on one node\'s writes or fsyncs; local clusters), clock (one node\'s wall clock bumped or strobed, then reset; local clusters), or all (every kind the cluster supports: power-loss only when it is up with --fault-fs lazy, membership not in s3 mode)' -r -f -a "(__fish_complete_list , 'printf \"%s\\t%s\\n\" kill \"SIGKILL nodes (one, a minority, a majority, all, or the primary), later restart them\" power-loss \"Cut the power of nodes (one, a minority, a majority, all, or the primary: a SIGKILL of nodes started with `cluster up --fault-fs lazy`, which loses every write not yet fsyncd), later restart them: a local cluster\" pause \"SIGSTOP nodes (one, a minority, a majority, all, or the primary), later SIGCONT them\" partition \"Partition the nodes in a shape drawn from the seed (one node cut off, halves, a majorities ring, a bridge, a one-way cut; s3 mode and containers: one node or halves, s3 cutting from the object store), dropping messages; later heal\" packet \"Call-level packet faults on every link or on one nodes links (delay with jitter, loss, duplication, reordering, drawn from the seed), later heal: a local cluster of paxos, raft or dynamo mode\" membership \"A new node joins (`cluster add-node`), later it leaves again (`remove-node`): a local cluster of paxos, raft or dynamo mode\" disk \"One nodes disk fails: EIO or ENOSPC on its writes or its fsyncs (seeded); the node must refuse what it cannot make durable and exit; later the fault is cleared and the node restarted: a local cluster\" clock \"One nodes wall clock is bumped by ±2 s, ±1 min or ±1 h, or strobes between two offsets (seeded); later it is reset: a local cluster. Its monotonic clock, which every timeout runs on, is not moved\" all \"Every kind above that the cluster supports\"')"
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l nemesis-interval -d 'Time between two faults; each lasts half of it' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l clients -d 'Concurrent clients, each with one operation outstanding at a time' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l keys -d 'Size of the key set (small means contention, which is the point)' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l duration -d 'Run for this long (e.g. 30s); the default when --ops is not given is 10s' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l ops -d 'Run this many operations in all' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l key-prefix -d 'Name keys `{PREFIX}k0`, `{PREFIX}k1`, ... and skip the opening FLUSHALL (keys no one used start absent): several workloads can then run against one cluster at once' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l seed -d 'Seed of the operation streams: the same seed gives the same invocations (a cas expects what its client read, which the run decides)' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l history -d 'Where to write the JSONL history' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l mix -d 'Relative weights of the operations [default: against valthree\'s s3, paxos and raft modes get=3,set=2,del=1,incr=1,append=1,cas=2,getdel=1,getset=1 (cas: SET IFEQ with the value the client last read); against dynamo mode vget=3,vset=2,vdel=1 (VGET WITHDOTS, and VSET/VDEL under the context the client last saw); against other servers get=3,set=2,del=1,incr=1,append=1]' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l timeout -d 'Per-operation client-side timeout; a timed-out operation is recorded as indeterminate' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l html -d 'With --check, also write the HTML timeline here' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l check-timeout -d 'With --check, the checker\'s time limit' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l settle-timeout -d 'Against dynamo mode: how long, after the run, the owners of the keys get to agree before their replicas are recorded for the convergence check. Each owner\'s own replica is read, which repairs nothing: only anti-entropy and hinted handoff converge them, so give it more than the nodes\' --aae-interval' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l ready-timeout -d 'Wait this long for every address to answer PING before starting (0s: start at once)' -r
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l check -d 'Check the history at the end and exit as `check-history` does (below): for linearizability, or against dynamo mode, for what dynamo promises (`check-history --model dynamo`). (A run without --key-prefix starts with FLUSHALL, recorded in the history: point it at a test database; against dynamo mode a run without one uses fresh keys instead.)'
complete -c valthree -n "__fish_valthree_using_subcommand workload" -l json -d 'Print the summary (and verdict) as JSON; no progress bar'
complete -c valthree -n "__fish_valthree_using_subcommand workload" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c valthree -n "__fish_valthree_using_subcommand workload" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "up" -d 'Start N nodes in the background and wait until each answers PING'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "status" -d 'Show each node: up, paused or down, and what it reports of itself'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "kill" -d 'SIGKILL a node'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "power-loss" -d 'Cut a node\'s power: SIGKILL of a node started with `--fault-fs lazy`, losing every write it had not fsync\'d (`restart` brings it back)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "pause" -d 'SIGSTOP a node'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "resume" -d 'SIGCONT a paused node'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "restart" -d 'Restart a node with the same flags and data'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "rolling-restart" -d 'Restart every node in turn without downtime: SIGTERM (a raft leader hands its leadership over first; raft followers go first, the leader last), wait for it to end, start it with the same flags and data, and go on once it answers VALTHREE.HEALTH (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "partition" -d 'Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic only). Cut links drop calls, as a real network does: a caller waits for its deadline or its connection\'s keepalive (1 s). In s3 mode the nodes outside the largest group lose the object store (on a tie, the last group keeps it)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "packet" -d 'Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and reply delayed, lost, a request duplicated or overtaken by the next; on every link, or on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "heal" -d 'Restore all node-to-node traffic: end the partition and the packet faults'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "clock" -d 'Skew a node\'s wall clock (testing): its timestamps, tombstone ages and hint windows read the skewed clock; timeouts and timers run on the monotonic clock and are not moved. A restart resets it'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "add-node" -d 'paxos, raft and dynamo modes: start one more node (empty) and add it to the membership while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a learner that catches up, then a voter; dynamo: it claims an even share of partitions, filled as a pending replica before the ring changes)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "remove-node" -d 'paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its partitions have moved to the others), then stop it and delete its data'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "down" -d 'Stop every node (SIGTERM, then SIGKILL after a grace period)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and not __fish_seen_subcommand_from up status kill power-loss pause resume restart rolling-restart partition packet heal clock add-node remove-node down help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from up" -l mode -r -f -a "s3\t'The whole database is one JSON object in S3-compatible storage, replaced by compare-and-swap'
paxos\t'CASPaxos: one replicated register per key'
raft\t'A Raft log replicated to a majority'
dynamo\t'A Dynamo-style ring: N replicas, R/W quorums, dotted version vectors, siblings'"
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from up" -l nodes -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from up" -l base-port -d 'Node i serves clients on base+i and peers on base+1000+i (metrics on base+2000+i)' -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from up" -l port-offset -d 'Peer ports are client ports plus this, metrics ports plus twice this (at least --nodes)' -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from up" -l fault-fs -d 'Testing: `lazy` starts every node with a file layer that keeps each write not yet fsync\'d inside the process, so that `power-loss` (a SIGKILL) loses what a power cut would' -r -f -a "off\t'In the kernel\'s page cache (pass-through): a SIGKILL loses none of them'
lazy\t'Inside the process until fsync: a SIGKILL loses what a power cut would'"
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from up" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from up" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from status" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from status" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from kill" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from kill" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from kill" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from kill" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from power-loss" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from power-loss" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from power-loss" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from power-loss" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from pause" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from pause" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from pause" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from pause" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from resume" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from resume" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from resume" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from restart" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from restart" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from restart" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from restart" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from rolling-restart" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from rolling-restart" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from rolling-restart" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from rolling-restart" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from partition" -l shape -d 'A shape instead of groups, its members drawn from `--seed`: one (a node cut off), halves (a minority and a majority), ring (each node sees a different majority), bridge (two halves joined through one node), one-way (a node that cannot reach the others but they reach it, or the reverse). s3 mode: one and halves' -r -f -a "one\t'One node cut off from the others'
halves\t'A minority and a majority, cut from each other'
ring\t'Each node sees a different majority'
bridge\t'Two halves joined through one node'
one-way\t'One node cannot reach the others but they reach it, or the reverse'"
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from partition" -l seed -d 'The seed that picks a shape\'s members' -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from partition" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from partition" -l refuse -d 'Refuse calls at once on both sides instead of dropping them (fail-fast, for tests; not with one-way cuts)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from partition" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from partition" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from partition" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -l delay -d 'Added to each request and reply, in milliseconds' -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -l jitter -d 'Up to this many more milliseconds, drawn for each message' -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -l loss -d 'The chance (0 to 1) that a request, or its reply, is lost' -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -l duplicate -d 'The chance (0 to 1) that a request is delivered twice' -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -l reorder -d 'The chance (0 to 1) that a request is held back until the next one on its link has left' -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -l seed -d 'Seeds the draws' -r
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from packet" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from heal" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from heal" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from heal" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from heal" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from clock" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from clock" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from clock" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from clock" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from clock" -a "bump" -d 'Move it by MS milliseconds (negative: back), on top of any earlier bump'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from clock" -a "strobe" -d 'Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from clock" -a "reset" -d 'Back to the host\'s clock'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from clock" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from add-node" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from add-node" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from add-node" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from add-node" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from remove-node" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from remove-node" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from remove-node" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from remove-node" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from down" -l dir -d 'The cluster\'s directory (state file, node data, logs)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from down" -l purge -d 'Also delete the cluster\'s directory'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from down" -l json -d 'Print JSON for scripts'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from down" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "up" -d 'Start N nodes in the background and wait until each answers PING'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show each node: up, paused or down, and what it reports of itself'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "kill" -d 'SIGKILL a node'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "power-loss" -d 'Cut a node\'s power: SIGKILL of a node started with `--fault-fs lazy`, losing every write it had not fsync\'d (`restart` brings it back)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "pause" -d 'SIGSTOP a node'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "resume" -d 'SIGCONT a paused node'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "restart" -d 'Restart a node with the same flags and data'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "rolling-restart" -d 'Restart every node in turn without downtime: SIGTERM (a raft leader hands its leadership over first; raft followers go first, the leader last), wait for it to end, start it with the same flags and data, and go on once it answers VALTHREE.HEALTH (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "partition" -d 'Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic only). Cut links drop calls, as a real network does: a caller waits for its deadline or its connection\'s keepalive (1 s). In s3 mode the nodes outside the largest group lose the object store (on a tie, the last group keeps it)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "packet" -d 'Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and reply delayed, lost, a request duplicated or overtaken by the next; on every link, or on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "heal" -d 'Restore all node-to-node traffic: end the partition and the packet faults'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "clock" -d 'Skew a node\'s wall clock (testing): its timestamps, tombstone ages and hint windows read the skewed clock; timeouts and timers run on the monotonic clock and are not moved. A restart resets it'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "add-node" -d 'paxos, raft and dynamo modes: start one more node (empty) and add it to the membership while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a learner that catches up, then a voter; dynamo: it claims an even share of partitions, filled as a pending replica before the ring changes)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "remove-node" -d 'paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its partitions have moved to the others), then stop it and delete its data'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "down" -d 'Stop every node (SIGTERM, then SIGKILL after a grace period)'
complete -c valthree -n "__fish_valthree_using_subcommand cluster; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c valthree -n "__fish_valthree_using_subcommand backup" -l addrs -d 'Comma-separated addresses of the nodes (default: the nodes of --cluster, or 127.0.0.1:6379). The client password is the cluster\'s, or $REDISCLI_AUTH' -r
complete -c valthree -n "__fish_valthree_using_subcommand backup" -l cluster -d 'A local cluster\'s directory (from `valthree cluster up`)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand backup" -l connections -d 'Connections working at once (a restore\'s writes; a key-by-key backup\'s reads). Default: what suits the mode (restore: 8 in s3 and raft mode, which write MSETs; 128 in dynamo mode, which writes key by key, and 48 in paxos mode, each with a connection to every node to write each key at its home; backup: 32, 8 in paxos mode, whose reads are rounds that write the value back)' -r
complete -c valthree -n "__fish_valthree_using_subcommand backup" -l json -d 'Print the report as JSON; no progress bar'
complete -c valthree -n "__fish_valthree_using_subcommand backup" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand backup" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand restore" -l addrs -d 'Comma-separated addresses of the nodes (default: the nodes of --cluster, or 127.0.0.1:6379). The client password is the cluster\'s, or $REDISCLI_AUTH' -r
complete -c valthree -n "__fish_valthree_using_subcommand restore" -l cluster -d 'A local cluster\'s directory (from `valthree cluster up`)' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand restore" -l connections -d 'Connections working at once (a restore\'s writes; a key-by-key backup\'s reads). Default: what suits the mode (restore: 8 in s3 and raft mode, which write MSETs; 128 in dynamo mode, which writes key by key, and 48 in paxos mode, each with a connection to every node to write each key at its home; backup: 32, 8 in paxos mode, whose reads are rounds that write the value back)' -r
complete -c valthree -n "__fish_valthree_using_subcommand restore" -l replace -d 'Restore into a database that already holds keys: the file\'s keys overwrite theirs, other keys stay'
complete -c valthree -n "__fish_valthree_using_subcommand restore" -l json -d 'Print the report as JSON; no progress bar'
complete -c valthree -n "__fish_valthree_using_subcommand restore" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand restore" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand check-history" -l model -d 'The model of what each key may do [default: dynamo for a history of dynamo mode, else register]' -r -f -a "register\t'One register per key: get/set/del/incr/append; flushall as a delete of each key at an instant of its own within the call (what paxos mode promises; s3 and raft promise one instant, which is not checked)'
dynamo\t'dynamo mode: no lost or zombie writes, unique dots, read-your-writes when R + W > N, converged replicas'"
complete -c valthree -n "__fish_valthree_using_subcommand check-history" -l html -d 'Also write a self-contained HTML timeline here' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand check-history" -l timeout -d 'Give up (verdict unknown, exit 2) after this long, e.g. 60s, 5m' -r
complete -c valthree -n "__fish_valthree_using_subcommand check-history" -l json -d 'Print a machine-readable verdict'
complete -c valthree -n "__fish_valthree_using_subcommand check-history" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c valthree -n "__fish_valthree_using_subcommand check-history" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand demo" -l dir -d 'Where the demo\'s clusters live [default: a fresh temporary directory]' -r -F
complete -c valthree -n "__fish_valthree_using_subcommand demo" -l base-port -d 'Node i listens on base+i (peers on base+1000+i)' -r
complete -c valthree -n "__fish_valthree_using_subcommand demo" -l pace -d 'Seconds to pause between steps, 0 to 10 [default: 1 on a terminal, 0 otherwise]' -r
complete -c valthree -n "__fish_valthree_using_subcommand demo" -l serve-flag -d 'Extra `valthree serve` flags for every node (e.g. a broken configuration, to see a claim fail)' -r
complete -c valthree -n "__fish_valthree_using_subcommand demo" -l keep -d 'Leave the cluster running at the end (with the commands to explore and remove it)'
complete -c valthree -n "__fish_valthree_using_subcommand demo" -l json -d 'A machine-readable log of the steps and checks instead of the narration'
complete -c valthree -n "__fish_valthree_using_subcommand demo" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand demo" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand paxos-compact-ballots" -l data-dir -d 'A member\'s node id and data directory, `ID=DIR`; once per member' -r
complete -c valthree -n "__fish_valthree_using_subcommand paxos-compact-ballots" -l dry-run -d 'Report what would be rewritten, change nothing'
complete -c valthree -n "__fish_valthree_using_subcommand paxos-compact-ballots" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand paxos-compact-ballots" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand s3-check" -l s3-endpoint -d 's3 mode: S3-compatible endpoint URL (e.g. http://127.0.0.1:9000); AWS when omitted' -r
complete -c valthree -n "__fish_valthree_using_subcommand s3-check" -l s3-bucket -d 's3 mode: bucket holding the database (created if missing); without it the embedded local object store in --data-dir is used' -r
complete -c valthree -n "__fish_valthree_using_subcommand s3-check" -l s3-region -d 's3 mode: region' -r
complete -c valthree -n "__fish_valthree_using_subcommand s3-check" -l s3-access-key -d 's3 mode: access key (default: the usual AWS credential chain)' -r
complete -c valthree -n "__fish_valthree_using_subcommand s3-check" -l s3-secret-key -d 's3 mode: secret key' -r
complete -c valthree -n "__fish_valthree_using_subcommand s3-check" -l rounds -d 'Rounds of each race' -r
complete -c valthree -n "__fish_valthree_using_subcommand s3-check" -l writers -d 'Concurrent writers in each round' -r
complete -c valthree -n "__fish_valthree_using_subcommand s3-check" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand s3-check" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand completions" -s h -l help -d 'Print help'
complete -c valthree -n "__fish_valthree_using_subcommand completions" -s V -l version -d 'Print version'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "serve" -d 'Serve the Redis protocol in one of the consistency modes'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "workload" -d 'Drive many clients against Redis-protocol servers and record the history'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "cluster" -d 'Run a local cluster and inject faults into it'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "backup" -d 'Write the whole keyspace to a Redis RDB file (s3, raft: one point in time; paxos, dynamo: key by key)'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "restore" -d 'Load a Redis RDB file\'s string keys (other types are skipped and counted)'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "check-history" -d 'Check a recorded history for linearizability'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "demo" -d 'Run a narrated, self-checking demo of a mechanism on a local cluster'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "paxos-compact-ballots" -d 'Rewrite a stopped paxos cluster\'s ballots to their ranks (order kept), giving back the room a forged ballot took'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "s3-check" -d 'Check that an S3 server\'s conditional PUTs hold under a race, as s3 mode needs'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "completions" -d 'Print a shell completion script'
complete -c valthree -n "__fish_valthree_using_subcommand help; and not __fish_seen_subcommand_from serve workload cluster backup restore check-history demo paxos-compact-ballots s3-check completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "up" -d 'Start N nodes in the background and wait until each answers PING'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "status" -d 'Show each node: up, paused or down, and what it reports of itself'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "kill" -d 'SIGKILL a node'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "power-loss" -d 'Cut a node\'s power: SIGKILL of a node started with `--fault-fs lazy`, losing every write it had not fsync\'d (`restart` brings it back)'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "pause" -d 'SIGSTOP a node'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "resume" -d 'SIGCONT a paused node'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "restart" -d 'Restart a node with the same flags and data'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "rolling-restart" -d 'Restart every node in turn without downtime: SIGTERM (a raft leader hands its leadership over first; raft followers go first, the leader last), wait for it to end, start it with the same flags and data, and go on once it answers VALTHREE.HEALTH (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "partition" -d 'Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic only). Cut links drop calls, as a real network does: a caller waits for its deadline or its connection\'s keepalive (1 s). In s3 mode the nodes outside the largest group lose the object store (on a tie, the last group keeps it)'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "packet" -d 'Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and reply delayed, lost, a request duplicated or overtaken by the next; on every link, or on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "heal" -d 'Restore all node-to-node traffic: end the partition and the packet faults'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "clock" -d 'Skew a node\'s wall clock (testing): its timestamps, tombstone ages and hint windows read the skewed clock; timeouts and timers run on the monotonic clock and are not moved. A restart resets it'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "add-node" -d 'paxos, raft and dynamo modes: start one more node (empty) and add it to the membership while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a learner that catches up, then a voter; dynamo: it claims an even share of partitions, filled as a pending replica before the ring changes)'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "remove-node" -d 'paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its partitions have moved to the others), then stop it and delete its data'
complete -c valthree -n "__fish_valthree_using_subcommand help; and __fish_seen_subcommand_from cluster" -f -a "down" -d 'Stop every node (SIGTERM, then SIGKILL after a grace period)'

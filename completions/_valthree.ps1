
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'valthree' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'valthree'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'valthree' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the Redis protocol in one of the consistency modes')
            [CompletionResult]::new('workload', 'workload', [CompletionResultType]::ParameterValue, 'Drive many clients against Redis-protocol servers and record the history')
            [CompletionResult]::new('cluster', 'cluster', [CompletionResultType]::ParameterValue, 'Run a local cluster and inject faults into it')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Write the whole keyspace to a Redis RDB file (s3, raft: one point in time; paxos, dynamo: key by key)')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Load a Redis RDB file''s string keys (other types are skipped and counted)')
            [CompletionResult]::new('check-history', 'check-history', [CompletionResultType]::ParameterValue, 'Check a recorded history for linearizability')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run a narrated, self-checking demo of a mechanism on a local cluster')
            [CompletionResult]::new('paxos-compact-ballots', 'paxos-compact-ballots', [CompletionResultType]::ParameterValue, 'Rewrite a stopped paxos cluster''s ballots to their ranks (order kept), giving back the room a forged ballot took')
            [CompletionResult]::new('s3-check', 's3-check', [CompletionResultType]::ParameterValue, 'Check that an S3 server''s conditional PUTs hold under a race, as s3 mode needs')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'valthree;serve' {
            [CompletionResult]::new('--mode', '--mode', [CompletionResultType]::ParameterName, 'How the cluster keeps itself consistent')
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Address to serve the Redis protocol on')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory for this node''s data (in s3 mode without --s3-bucket: the embedded object store)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'The log''s format on stderr: text, or JSON lines (with `node` and `mode` on each)')
            [CompletionResult]::new('--metrics-addr', '--metrics-addr', [CompletionResultType]::ParameterName, 'Serve /metrics (Prometheus), /livez and /readyz over HTTP on this address (e.g. 127.0.0.1:9121); off unless given')
            [CompletionResult]::new('--requirepass', '--requirepass', [CompletionResultType]::ParameterName, 'Require clients to AUTH with this password')
            [CompletionResult]::new('--requirepass-file', '--requirepass-file', [CompletionResultType]::ParameterName, 'Read the password from this file instead (one line)')
            [CompletionResult]::new('--maxclients', '--maxclients', [CompletionResultType]::ParameterName, 'Refuse connections beyond this many')
            [CompletionResult]::new('--admin-token', '--admin-token', [CompletionResultType]::ParameterName, 'Enables the VALTHREE.FAULT admin command (partitions for testing) for holders of this token')
            [CompletionResult]::new('--admin-token-file', '--admin-token-file', [CompletionResultType]::ParameterName, 'Read the admin token from this file instead (one line)')
            [CompletionResult]::new('--proto-max-bulk-len', '--proto-max-bulk-len', [CompletionResultType]::ParameterName, 'Longest bulk string a client may send (bytes; k, kb, m, mb, g, gb suffixes accepted)')
            [CompletionResult]::new('--maxmemory-clients', '--maxmemory-clients', [CompletionResultType]::ParameterName, 'The bytes all clients'' query and output buffers may hold together. A request or reply that would pass it first evicts (closes) the clients holding the most unsent output that received less than 64 KiB of it, or a thirtieth of what waits, in the last 2 s; failing that, a request gets an error and is closed, a reply is refused (0: no limit)')
            [CompletionResult]::new('--client-output-buffer-limit', '--client-output-buffer-limit', [CompletionResultType]::ParameterName, 'Redis'' normal-class `client-output-buffer-limit`: "HARD SOFT SECONDS" (a leading `normal` is accepted). A reply that would leave more than HARD bytes unsent is not queued; a client with more than SOFT bytes unsent that reads none of them for SECONDS is closed (0: no limit)')
            [CompletionResult]::new('--tls-port', '--tls-port', [CompletionResultType]::ParameterName, 'Also serve TLS clients on this address (e.g. 127.0.0.1:6380); needs --tls-cert-file and --tls-key-file')
            [CompletionResult]::new('--tls-cert-file', '--tls-cert-file', [CompletionResultType]::ParameterName, 'The server''s certificate chain (PEM)')
            [CompletionResult]::new('--tls-key-file', '--tls-key-file', [CompletionResultType]::ParameterName, 'The server''s private key (PEM)')
            [CompletionResult]::new('--tls-ca-cert-file', '--tls-ca-cert-file', [CompletionResultType]::ParameterName, 'Certificates of the CAs that sign client certificates (PEM)')
            [CompletionResult]::new('--tls-auth-clients', '--tls-auth-clients', [CompletionResultType]::ParameterName, 'Whether clients must show a certificate signed by --tls-ca-cert-file (default: yes when a CA file is given, as in Redis; no otherwise)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Close a client idle for this many seconds (0: never), as Redis'' `timeout`')
            [CompletionResult]::new('--shutdown-timeout', '--shutdown-timeout', [CompletionResultType]::ParameterName, 'On SIGTERM or SIGINT: how long to finish the commands in flight and hand over (raft: leadership; dynamo: pending hints) before the node stops; what is left then is cut off (commands) or kept on disk (hints), and the last log line says which')
            [CompletionResult]::new('--snapshot-walk-timeout', '--snapshot-walk-timeout', [CompletionResultType]::ParameterName, 'End a backup''s snapshot walk (VALTHREE.SNAPSHOT) idle for this many seconds, letting go of the keyspace version it holds')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 's3 mode: S3-compatible endpoint URL (e.g. http://127.0.0.1:9000); AWS when omitted')
            [CompletionResult]::new('--s3-bucket', '--s3-bucket', [CompletionResultType]::ParameterName, 's3 mode: bucket holding the database (created if missing); without it the embedded local object store in --data-dir is used')
            [CompletionResult]::new('--s3-region', '--s3-region', [CompletionResultType]::ParameterName, 's3 mode: region')
            [CompletionResult]::new('--s3-access-key', '--s3-access-key', [CompletionResultType]::ParameterName, 's3 mode: access key (default: the usual AWS credential chain)')
            [CompletionResult]::new('--s3-secret-key', '--s3-secret-key', [CompletionResultType]::ParameterName, 's3 mode: secret key')
            [CompletionResult]::new('--s3-dir', '--s3-dir', [CompletionResultType]::ParameterName, 's3 mode: directory of the embedded object store, shared by every node of a local cluster (default: --data-dir)')
            [CompletionResult]::new('--s3-key', '--s3-key', [CompletionResultType]::ParameterName, 's3 mode: object key of the database document')
            [CompletionResult]::new('--s3-batch', '--s3-batch', [CompletionResultType]::ParameterName, 's3 mode: group commit (one conditional PUT for all writes queued at once)')
            [CompletionResult]::new('--s3-value-objects-from', '--s3-value-objects-from', [CompletionResultType]::ParameterName, 's3 mode: values this large or larger are stored once as objects of their own, and the document holds a reference (0: every value stays in the document)')
            [CompletionResult]::new('--maxmemory', '--maxmemory', [CompletionResultType]::ParameterName, 's3 mode: the most bytes the keys and values may hold together; a write that would grow them past it answers -OOM, as Redis does past its maxmemory (0: no limit)')
            [CompletionResult]::new('--s3-snapshot-keys', '--s3-snapshot-keys', [CompletionResultType]::ParameterName, 's3 mode: the most keys the document holds over its snapshot before the whole keyspace is written as a new one (tests set it low to exercise snapshots on small databases)')
            [CompletionResult]::new('--node-id', '--node-id', [CompletionResultType]::ParameterName, 'paxos, raft and dynamo modes: this node''s id (1, 2, ...)')
            [CompletionResult]::new('--peer-addr', '--peer-addr', [CompletionResultType]::ParameterName, 'paxos, raft and dynamo modes: where peers reach this node (node-to-node gRPC)')
            [CompletionResult]::new('--peer-listen', '--peer-listen', [CompletionResultType]::ParameterName, 'paxos, raft and dynamo modes: where the peer server listens, when not at --peer-addr (which is then only what peers are told): e.g. `0.0.0.0:7379` in a container whose name is its --peer-addr')
            [CompletionResult]::new('--peers', '--peers', [CompletionResultType]::ParameterName, 'paxos, raft and dynamo modes: the initial members, `1=host:port,2=host:port,...` (this node included); used only on first start: later the configuration stored in --data-dir wins. Omitted: a one-node cluster')
            [CompletionResult]::new('--cluster-secret-file', '--cluster-secret-file', [CompletionResultType]::ParameterName, 'paxos, raft and dynamo modes: a file holding the cluster secret every peer call must show (or set VALTHREE_CLUSTER_SECRET; never on the command line). Required when --peer-addr is reachable from other hosts')
            [CompletionResult]::new('--peer-tls-cert', '--peer-tls-cert', [CompletionResultType]::ParameterName, 'paxos, raft and dynamo modes: mutual TLS on the peer plane: this node''s certificate (PEM; it must name the host or IP of --peer-addr) ...')
            [CompletionResult]::new('--peer-tls-key', '--peer-tls-key', [CompletionResultType]::ParameterName, '... its private key ...')
            [CompletionResult]::new('--peer-tls-ca', '--peer-tls-ca', [CompletionResultType]::ParameterName, '... and the CA that signs every node''s certificate')
            [CompletionResult]::new('--fault-fs', '--fault-fs', [CompletionResultType]::ParameterName, 'Testing only (every mode): `lazy` keeps every write not yet fsync''d inside the process, so a SIGKILL loses what a power cut would (`valthree cluster up --fault-fs lazy`)')
            [CompletionResult]::new('--paxos-one-rtt', '--paxos-one-rtt', [CompletionResultType]::ParameterName, 'paxos mode: the one-round-trip optimisation (an accept also promises the next ballot)')
            [CompletionResult]::new('--paxos-gc-interval', '--paxos-gc-interval', [CompletionResultType]::ParameterName, 'paxos mode: how often tombstones of deleted keys are garbage-collected (0s: never)')
            [CompletionResult]::new('--unsafe-accept-quorum', '--unsafe-accept-quorum', [CompletionResultType]::ParameterName, 'Test only: accept a paxos value after this many acknowledgements (breaks quorum intersection, so the checker has a bug to catch)')
            [CompletionResult]::new('--raft-snapshot-every', '--raft-snapshot-every', [CompletionResultType]::ParameterName, 'raft mode: log entries between snapshots (the log is then purged but for a quarter of that)')
            [CompletionResult]::new('--raft-forward-batch', '--raft-forward-batch', [CompletionResultType]::ParameterName, 'raft mode: a follower forwards the writes queued at once to the leader in one peer call (off, the default: one call per write)')
            [CompletionResult]::new('--vnodes', '--vnodes', [CompletionResultType]::ParameterName, 'dynamo mode: partitions of the ring (a power of two)')
            [CompletionResult]::new('--replicas', '--replicas', [CompletionResultType]::ParameterName, 'dynamo mode: copies of every key, N (default: 3, or the number of nodes if fewer)')
            [CompletionResult]::new('--r', '--r', [CompletionResultType]::ParameterName, 'dynamo mode: replicas a read waits for, R (default: 2, or N if smaller)')
            [CompletionResult]::new('--w', '--w', [CompletionResultType]::ParameterName, 'dynamo mode: replicas a write waits for, W (default: 2, or N if smaller)')
            [CompletionResult]::new('--read-repair', '--read-repair', [CompletionResultType]::ParameterName, 'dynamo mode: read repair in the background (async), before the read answers (sync), or none (off: anti-entropy alone converges replicas)')
            [CompletionResult]::new('--hinted-handoff', '--hinted-handoff', [CompletionResultType]::ParameterName, 'dynamo mode: hinted handoff (a write an owner missed is replayed to it when it is back)')
            [CompletionResult]::new('--max-hints', '--max-hints', [CompletionResultType]::ParameterName, 'dynamo mode: hints kept at most; past it new ones are dropped (and counted in INFO)')
            [CompletionResult]::new('--hint-window', '--hint-window', [CompletionResultType]::ParameterName, 'dynamo mode: hints older than this are dropped unreplayed')
            [CompletionResult]::new('--sibling-read', '--sibling-read', [CompletionResultType]::ParameterName, 'dynamo mode: what GET answers for a key with several siblings: the latest one (pick) or -CONFLICT')
            [CompletionResult]::new('--max-siblings', '--max-siblings', [CompletionResultType]::ParameterName, 'dynamo mode: a write that would leave a key with more siblings than this is refused (-CONFLICT: resolve them with VGET then VSET under the context read, or a plain SET)')
            [CompletionResult]::new('--swim-period', '--swim-period', [CompletionResultType]::ParameterName, 'dynamo mode: how often the failure detector (SWIM) probes a member')
            [CompletionResult]::new('--aae-interval', '--aae-interval', [CompletionResultType]::ParameterName, 'dynamo mode: how often anti-entropy compares every partition with each co-owner''s (0: never)')
            [CompletionResult]::new('--aae-max-keys', '--aae-max-keys', [CompletionResultType]::ParameterName, 'dynamo mode: keys one anti-entropy exchange repairs at most (the next starts at once if more differ)')
            [CompletionResult]::new('--tombstone-grace', '--tombstone-grace', [CompletionResultType]::ParameterName, 'dynamo mode: how old a tombstone every owner holds must be before it is deleted for good')
            [CompletionResult]::new('--handoff-grace', '--handoff-grace', [CompletionResultType]::ParameterName, 'dynamo mode: how long a node keeps a partition it no longer holds after a membership change before it hands it over once more and deletes its copy')
            [CompletionResult]::new('--suspect-timeout', '--suspect-timeout', [CompletionResultType]::ParameterName, 'dynamo mode: how long a member that failed a probe stays SUSPECT before it is DEAD')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Log as JSON lines: `--log-format json`, by its older name')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output (-v debug, -vv trace); RUST_LOG overrides')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output (-v debug, -vv trace); RUST_LOG overrides')
            [CompletionResult]::new('--unsafe-trust-object-store', '--unsafe-trust-object-store', [CompletionResultType]::ParameterName, 's3 mode: serve on a bucket even if its server fails the start-up check of conditional PUTs (`valthree s3-check`), trusting it blindly: on a server whose conditional PUT is not atomic, concurrent writes can be lost and s3 mode is NOT linearizable')
            [CompletionResult]::new('--unsafe-stale-reads', '--unsafe-stale-reads', [CompletionResultType]::ParameterName, 'Test only: answer some reads from a stale snapshot, so the checker has a bug to catch')
            [CompletionResult]::new('--unsafe-blind-cas', '--unsafe-blind-cas', [CompletionResultType]::ParameterName, 'Test only: SET … IFEQ writes without comparing, so the checker has a broken compare-and-set to catch')
            [CompletionResult]::new('--join', '--join', [CompletionResultType]::ParameterName, 'paxos, raft and dynamo modes: start with no configuration and wait to be added by a member (`valthree cluster add-node` or `VALTHREE.MEMBERS ADD`)')
            [CompletionResult]::new('--unsafe-skip-fsync', '--unsafe-skip-fsync', [CompletionResultType]::ParameterName, 'Testing only, a planted bug (every mode): skip every fsync of the write path. Caught by the power-loss nemesis with `--fault-fs lazy`')
            [CompletionResult]::new('--unsafe-no-ballot-ceiling', '--unsafe-no-ballot-ceiling', [CompletionResultType]::ParameterName, 'Test only: take peers'' ballots up to 2^62 whatever the clock says (see `Ballot::ceiling`), as nodes before the ceiling did, so a test can build the state a forged ballot left on such a cluster')
            [CompletionResult]::new('--stale-reads', '--stale-reads', [CompletionResultType]::ParameterName, 'raft mode: answer reads from this node''s state machine without asking the leader — faster, but a read may miss recent writes (NOT linearizable)')
            [CompletionResult]::new('--sloppy-quorum', '--sloppy-quorum', [CompletionResultType]::ParameterName, 'dynamo mode: let live nodes past a key''s preference list stand in for its down owners and count toward W (they hand the write over when the owner is back). Keeps writes available, but R + W > N no longer promises read-your-writes')
            [CompletionResult]::new('--unsafe-lww', '--unsafe-lww', [CompletionResultType]::ParameterName, 'Test only: dynamo mode keeps one value per key, the latest by timestamp (a concurrent write is silently lost), so the checker has a bug to catch')
            [CompletionResult]::new('--unsafe-server-clocks', '--unsafe-server-clocks', [CompletionResultType]::ParameterName, 'Test only: dynamo mode with per-server plain vector clocks instead of dotted ones')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;workload' {
            [CompletionResult]::new('--addrs', '--addrs', [CompletionResultType]::ParameterName, 'Comma-separated addresses; client i talks to addrs[i % n] (default: the nodes of --cluster, or 127.0.0.1:6379)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'A local cluster''s directory (from `valthree cluster up`): its nodes are the addresses, and the nemesis acts on it')
            [CompletionResult]::new('--docker', '--docker', [CompletionResultType]::ParameterName, 'Containers on a Docker network that are the nodes (comma-separated names): the nemesis acts on them with `docker kill/start`, `pause/unpause` and `network disconnect/connect` (give the addresses with --addrs)')
            [CompletionResult]::new('--docker-network', '--docker-network', [CompletionResultType]::ParameterName, 'With --docker: the network a partition disconnects a container from')
            [CompletionResult]::new('--nemesis', '--nemesis', [CompletionResultType]::ParameterName, 'Faults to inject while the workload runs (comma-separated; needs --cluster or --docker): kill, pause, power-loss (each on one node, a minority, a majority, all, or the primary, drawn from the seed; power-loss needs a local cluster up with --fault-fs lazy), partition (a shape drawn from the seed: one, halves, ring, bridge, one-way; dropping messages), packet (call-level delay, loss, duplication, reordering on the peer plane; local clusters), membership (a node joins, then leaves; local clusters), disk (EIO or ENOSPC on one node''s writes or fsyncs; local clusters), clock (one node''s wall clock bumped or strobed, then reset; local clusters), or all (every kind the cluster supports: power-loss only when it is up with --fault-fs lazy, membership not in s3 mode)')
            [CompletionResult]::new('--nemesis-interval', '--nemesis-interval', [CompletionResultType]::ParameterName, 'Time between two faults; each lasts half of it')
            [CompletionResult]::new('--clients', '--clients', [CompletionResultType]::ParameterName, 'Concurrent clients, each with one operation outstanding at a time')
            [CompletionResult]::new('--keys', '--keys', [CompletionResultType]::ParameterName, 'Size of the key set (small means contention, which is the point)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Run for this long (e.g. 30s); the default when --ops is not given is 10s')
            [CompletionResult]::new('--ops', '--ops', [CompletionResultType]::ParameterName, 'Run this many operations in all')
            [CompletionResult]::new('--key-prefix', '--key-prefix', [CompletionResultType]::ParameterName, 'Name keys `{PREFIX}k0`, `{PREFIX}k1`, ... and skip the opening FLUSHALL (keys no one used start absent): several workloads can then run against one cluster at once')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seed of the operation streams: the same seed gives the same invocations (a cas expects what its client read, which the run decides)')
            [CompletionResult]::new('--history', '--history', [CompletionResultType]::ParameterName, 'Where to write the JSONL history')
            [CompletionResult]::new('--mix', '--mix', [CompletionResultType]::ParameterName, 'Relative weights of the operations [default: against valthree''s s3, paxos and raft modes get=3,set=2,del=1,incr=1,append=1,cas=2,getdel=1,getset=1 (cas: SET IFEQ with the value the client last read); against dynamo mode vget=3,vset=2,vdel=1 (VGET WITHDOTS, and VSET/VDEL under the context the client last saw); against other servers get=3,set=2,del=1,incr=1,append=1]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Per-operation client-side timeout; a timed-out operation is recorded as indeterminate')
            [CompletionResult]::new('--html', '--html', [CompletionResultType]::ParameterName, 'With --check, also write the HTML timeline here')
            [CompletionResult]::new('--check-timeout', '--check-timeout', [CompletionResultType]::ParameterName, 'With --check, the checker''s time limit')
            [CompletionResult]::new('--settle-timeout', '--settle-timeout', [CompletionResultType]::ParameterName, 'Against dynamo mode: how long, after the run, the owners of the keys get to agree before their replicas are recorded for the convergence check. Each owner''s own replica is read, which repairs nothing: only anti-entropy and hinted handoff converge them, so give it more than the nodes'' --aae-interval')
            [CompletionResult]::new('--ready-timeout', '--ready-timeout', [CompletionResultType]::ParameterName, 'Wait this long for every address to answer PING before starting (0s: start at once)')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Check the history at the end and exit as `check-history` does (below): for linearizability, or against dynamo mode, for what dynamo promises (`check-history --model dynamo`). (A run without --key-prefix starts with FLUSHALL, recorded in the history: point it at a test database; against dynamo mode a run without one uses fresh keys instead.)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the summary (and verdict) as JSON; no progress bar')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Start N nodes in the background and wait until each answers PING')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show each node: up, paused or down, and what it reports of itself')
            [CompletionResult]::new('kill', 'kill', [CompletionResultType]::ParameterValue, 'SIGKILL a node')
            [CompletionResult]::new('power-loss', 'power-loss', [CompletionResultType]::ParameterValue, 'Cut a node''s power: SIGKILL of a node started with `--fault-fs lazy`, losing every write it had not fsync''d (`restart` brings it back)')
            [CompletionResult]::new('pause', 'pause', [CompletionResultType]::ParameterValue, 'SIGSTOP a node')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'SIGCONT a paused node')
            [CompletionResult]::new('restart', 'restart', [CompletionResultType]::ParameterValue, 'Restart a node with the same flags and data')
            [CompletionResult]::new('rolling-restart', 'rolling-restart', [CompletionResultType]::ParameterValue, 'Restart every node in turn without downtime: SIGTERM (a raft leader hands its leadership over first; raft followers go first, the leader last), wait for it to end, start it with the same flags and data, and go on once it answers VALTHREE.HEALTH (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s')
            [CompletionResult]::new('partition', 'partition', [CompletionResultType]::ParameterValue, 'Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic only). Cut links drop calls, as a real network does: a caller waits for its deadline or its connection''s keepalive (1 s). In s3 mode the nodes outside the largest group lose the object store (on a tie, the last group keeps it)')
            [CompletionResult]::new('packet', 'packet', [CompletionResultType]::ParameterValue, 'Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and reply delayed, lost, a request duplicated or overtaken by the next; on every link, or on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them')
            [CompletionResult]::new('heal', 'heal', [CompletionResultType]::ParameterValue, 'Restore all node-to-node traffic: end the partition and the packet faults')
            [CompletionResult]::new('clock', 'clock', [CompletionResultType]::ParameterValue, 'Skew a node''s wall clock (testing): its timestamps, tombstone ages and hint windows read the skewed clock; timeouts and timers run on the monotonic clock and are not moved. A restart resets it')
            [CompletionResult]::new('add-node', 'add-node', [CompletionResultType]::ParameterValue, 'paxos, raft and dynamo modes: start one more node (empty) and add it to the membership while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a learner that catches up, then a voter; dynamo: it claims an even share of partitions, filled as a pending replica before the ring changes)')
            [CompletionResult]::new('remove-node', 'remove-node', [CompletionResultType]::ParameterValue, 'paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its partitions have moved to the others), then stop it and delete its data')
            [CompletionResult]::new('down', 'down', [CompletionResultType]::ParameterValue, 'Stop every node (SIGTERM, then SIGKILL after a grace period)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'valthree;cluster;up' {
            [CompletionResult]::new('--mode', '--mode', [CompletionResultType]::ParameterName, 'mode')
            [CompletionResult]::new('--nodes', '--nodes', [CompletionResultType]::ParameterName, 'nodes')
            [CompletionResult]::new('--base-port', '--base-port', [CompletionResultType]::ParameterName, 'Node i serves clients on base+i and peers on base+1000+i (metrics on base+2000+i)')
            [CompletionResult]::new('--port-offset', '--port-offset', [CompletionResultType]::ParameterName, 'Peer ports are client ports plus this, metrics ports plus twice this (at least --nodes)')
            [CompletionResult]::new('--fault-fs', '--fault-fs', [CompletionResultType]::ParameterName, 'Testing: `lazy` starts every node with a file layer that keeps each write not yet fsync''d inside the process, so that `power-loss` (a SIGKILL) loses what a power cut would')
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;status' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;kill' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;power-loss' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;pause' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;resume' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;restart' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;rolling-restart' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;partition' {
            [CompletionResult]::new('--shape', '--shape', [CompletionResultType]::ParameterName, 'A shape instead of groups, its members drawn from `--seed`: one (a node cut off), halves (a minority and a majority), ring (each node sees a different majority), bridge (two halves joined through one node), one-way (a node that cannot reach the others but they reach it, or the reverse). s3 mode: one and halves')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'The seed that picks a shape''s members')
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--refuse', '--refuse', [CompletionResultType]::ParameterName, 'Refuse calls at once on both sides instead of dropping them (fail-fast, for tests; not with one-way cuts)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;packet' {
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'Added to each request and reply, in milliseconds')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Up to this many more milliseconds, drawn for each message')
            [CompletionResult]::new('--loss', '--loss', [CompletionResultType]::ParameterName, 'The chance (0 to 1) that a request, or its reply, is lost')
            [CompletionResult]::new('--duplicate', '--duplicate', [CompletionResultType]::ParameterName, 'The chance (0 to 1) that a request is delivered twice')
            [CompletionResult]::new('--reorder', '--reorder', [CompletionResultType]::ParameterName, 'The chance (0 to 1) that a request is held back until the next one on its link has left')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seeds the draws')
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;heal' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;clock' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('bump', 'bump', [CompletionResultType]::ParameterValue, 'Move it by MS milliseconds (negative: back), on top of any earlier bump')
            [CompletionResult]::new('strobe', 'strobe', [CompletionResultType]::ParameterValue, 'Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Back to the host''s clock')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'valthree;cluster;clock;bump' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;clock;strobe' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;clock;reset' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;clock;help' {
            [CompletionResult]::new('bump', 'bump', [CompletionResultType]::ParameterValue, 'Move it by MS milliseconds (negative: back), on top of any earlier bump')
            [CompletionResult]::new('strobe', 'strobe', [CompletionResultType]::ParameterValue, 'Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Back to the host''s clock')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'valthree;cluster;clock;help;bump' {
            break
        }
        'valthree;cluster;clock;help;strobe' {
            break
        }
        'valthree;cluster;clock;help;reset' {
            break
        }
        'valthree;cluster;clock;help;help' {
            break
        }
        'valthree;cluster;add-node' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;remove-node' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;down' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'The cluster''s directory (state file, node data, logs)')
            [CompletionResult]::new('--purge', '--purge', [CompletionResultType]::ParameterName, 'Also delete the cluster''s directory')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON for scripts')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;cluster;help' {
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Start N nodes in the background and wait until each answers PING')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show each node: up, paused or down, and what it reports of itself')
            [CompletionResult]::new('kill', 'kill', [CompletionResultType]::ParameterValue, 'SIGKILL a node')
            [CompletionResult]::new('power-loss', 'power-loss', [CompletionResultType]::ParameterValue, 'Cut a node''s power: SIGKILL of a node started with `--fault-fs lazy`, losing every write it had not fsync''d (`restart` brings it back)')
            [CompletionResult]::new('pause', 'pause', [CompletionResultType]::ParameterValue, 'SIGSTOP a node')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'SIGCONT a paused node')
            [CompletionResult]::new('restart', 'restart', [CompletionResultType]::ParameterValue, 'Restart a node with the same flags and data')
            [CompletionResult]::new('rolling-restart', 'rolling-restart', [CompletionResultType]::ParameterValue, 'Restart every node in turn without downtime: SIGTERM (a raft leader hands its leadership over first; raft followers go first, the leader last), wait for it to end, start it with the same flags and data, and go on once it answers VALTHREE.HEALTH (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s')
            [CompletionResult]::new('partition', 'partition', [CompletionResultType]::ParameterValue, 'Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic only). Cut links drop calls, as a real network does: a caller waits for its deadline or its connection''s keepalive (1 s). In s3 mode the nodes outside the largest group lose the object store (on a tie, the last group keeps it)')
            [CompletionResult]::new('packet', 'packet', [CompletionResultType]::ParameterValue, 'Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and reply delayed, lost, a request duplicated or overtaken by the next; on every link, or on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them')
            [CompletionResult]::new('heal', 'heal', [CompletionResultType]::ParameterValue, 'Restore all node-to-node traffic: end the partition and the packet faults')
            [CompletionResult]::new('clock', 'clock', [CompletionResultType]::ParameterValue, 'Skew a node''s wall clock (testing): its timestamps, tombstone ages and hint windows read the skewed clock; timeouts and timers run on the monotonic clock and are not moved. A restart resets it')
            [CompletionResult]::new('add-node', 'add-node', [CompletionResultType]::ParameterValue, 'paxos, raft and dynamo modes: start one more node (empty) and add it to the membership while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a learner that catches up, then a voter; dynamo: it claims an even share of partitions, filled as a pending replica before the ring changes)')
            [CompletionResult]::new('remove-node', 'remove-node', [CompletionResultType]::ParameterValue, 'paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its partitions have moved to the others), then stop it and delete its data')
            [CompletionResult]::new('down', 'down', [CompletionResultType]::ParameterValue, 'Stop every node (SIGTERM, then SIGKILL after a grace period)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'valthree;cluster;help;up' {
            break
        }
        'valthree;cluster;help;status' {
            break
        }
        'valthree;cluster;help;kill' {
            break
        }
        'valthree;cluster;help;power-loss' {
            break
        }
        'valthree;cluster;help;pause' {
            break
        }
        'valthree;cluster;help;resume' {
            break
        }
        'valthree;cluster;help;restart' {
            break
        }
        'valthree;cluster;help;rolling-restart' {
            break
        }
        'valthree;cluster;help;partition' {
            break
        }
        'valthree;cluster;help;packet' {
            break
        }
        'valthree;cluster;help;heal' {
            break
        }
        'valthree;cluster;help;clock' {
            [CompletionResult]::new('bump', 'bump', [CompletionResultType]::ParameterValue, 'Move it by MS milliseconds (negative: back), on top of any earlier bump')
            [CompletionResult]::new('strobe', 'strobe', [CompletionResultType]::ParameterValue, 'Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Back to the host''s clock')
            break
        }
        'valthree;cluster;help;clock;bump' {
            break
        }
        'valthree;cluster;help;clock;strobe' {
            break
        }
        'valthree;cluster;help;clock;reset' {
            break
        }
        'valthree;cluster;help;add-node' {
            break
        }
        'valthree;cluster;help;remove-node' {
            break
        }
        'valthree;cluster;help;down' {
            break
        }
        'valthree;cluster;help;help' {
            break
        }
        'valthree;backup' {
            [CompletionResult]::new('--addrs', '--addrs', [CompletionResultType]::ParameterName, 'Comma-separated addresses of the nodes (default: the nodes of --cluster, or 127.0.0.1:6379). The client password is the cluster''s, or $REDISCLI_AUTH')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'A local cluster''s directory (from `valthree cluster up`)')
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'Connections working at once (a restore''s writes; a key-by-key backup''s reads). Default: what suits the mode (restore: 8 in s3 and raft mode, which write MSETs; 128 in dynamo mode, which writes key by key, and 48 in paxos mode, each with a connection to every node to write each key at its home; backup: 32, 8 in paxos mode, whose reads are rounds that write the value back)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the report as JSON; no progress bar')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;restore' {
            [CompletionResult]::new('--addrs', '--addrs', [CompletionResultType]::ParameterName, 'Comma-separated addresses of the nodes (default: the nodes of --cluster, or 127.0.0.1:6379). The client password is the cluster''s, or $REDISCLI_AUTH')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'A local cluster''s directory (from `valthree cluster up`)')
            [CompletionResult]::new('--connections', '--connections', [CompletionResultType]::ParameterName, 'Connections working at once (a restore''s writes; a key-by-key backup''s reads). Default: what suits the mode (restore: 8 in s3 and raft mode, which write MSETs; 128 in dynamo mode, which writes key by key, and 48 in paxos mode, each with a connection to every node to write each key at its home; backup: 32, 8 in paxos mode, whose reads are rounds that write the value back)')
            [CompletionResult]::new('--replace', '--replace', [CompletionResultType]::ParameterName, 'Restore into a database that already holds keys: the file''s keys overwrite theirs, other keys stay')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the report as JSON; no progress bar')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;check-history' {
            [CompletionResult]::new('--model', '--model', [CompletionResultType]::ParameterName, 'The model of what each key may do [default: dynamo for a history of dynamo mode, else register]')
            [CompletionResult]::new('--html', '--html', [CompletionResultType]::ParameterName, 'Also write a self-contained HTML timeline here')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up (verdict unknown, exit 2) after this long, e.g. 60s, 5m')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a machine-readable verdict')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;demo' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'Where the demo''s clusters live [default: a fresh temporary directory]')
            [CompletionResult]::new('--base-port', '--base-port', [CompletionResultType]::ParameterName, 'Node i listens on base+i (peers on base+1000+i)')
            [CompletionResult]::new('--pace', '--pace', [CompletionResultType]::ParameterName, 'Seconds to pause between steps, 0 to 10 [default: 1 on a terminal, 0 otherwise]')
            [CompletionResult]::new('--serve-flag', '--serve-flag', [CompletionResultType]::ParameterName, 'Extra `valthree serve` flags for every node (e.g. a broken configuration, to see a claim fail)')
            [CompletionResult]::new('--keep', '--keep', [CompletionResultType]::ParameterName, 'Leave the cluster running at the end (with the commands to explore and remove it)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'A machine-readable log of the steps and checks instead of the narration')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;paxos-compact-ballots' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'A member''s node id and data directory, `ID=DIR`; once per member')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Report what would be rewritten, change nothing')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;s3-check' {
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 's3 mode: S3-compatible endpoint URL (e.g. http://127.0.0.1:9000); AWS when omitted')
            [CompletionResult]::new('--s3-bucket', '--s3-bucket', [CompletionResultType]::ParameterName, 's3 mode: bucket holding the database (created if missing); without it the embedded local object store in --data-dir is used')
            [CompletionResult]::new('--s3-region', '--s3-region', [CompletionResultType]::ParameterName, 's3 mode: region')
            [CompletionResult]::new('--s3-access-key', '--s3-access-key', [CompletionResultType]::ParameterName, 's3 mode: access key (default: the usual AWS credential chain)')
            [CompletionResult]::new('--s3-secret-key', '--s3-secret-key', [CompletionResultType]::ParameterName, 's3 mode: secret key')
            [CompletionResult]::new('--rounds', '--rounds', [CompletionResultType]::ParameterName, 'Rounds of each race')
            [CompletionResult]::new('--writers', '--writers', [CompletionResultType]::ParameterName, 'Concurrent writers in each round')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'valthree;help' {
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the Redis protocol in one of the consistency modes')
            [CompletionResult]::new('workload', 'workload', [CompletionResultType]::ParameterValue, 'Drive many clients against Redis-protocol servers and record the history')
            [CompletionResult]::new('cluster', 'cluster', [CompletionResultType]::ParameterValue, 'Run a local cluster and inject faults into it')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Write the whole keyspace to a Redis RDB file (s3, raft: one point in time; paxos, dynamo: key by key)')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Load a Redis RDB file''s string keys (other types are skipped and counted)')
            [CompletionResult]::new('check-history', 'check-history', [CompletionResultType]::ParameterValue, 'Check a recorded history for linearizability')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run a narrated, self-checking demo of a mechanism on a local cluster')
            [CompletionResult]::new('paxos-compact-ballots', 'paxos-compact-ballots', [CompletionResultType]::ParameterValue, 'Rewrite a stopped paxos cluster''s ballots to their ranks (order kept), giving back the room a forged ballot took')
            [CompletionResult]::new('s3-check', 's3-check', [CompletionResultType]::ParameterValue, 'Check that an S3 server''s conditional PUTs hold under a race, as s3 mode needs')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'valthree;help;serve' {
            break
        }
        'valthree;help;workload' {
            break
        }
        'valthree;help;cluster' {
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Start N nodes in the background and wait until each answers PING')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show each node: up, paused or down, and what it reports of itself')
            [CompletionResult]::new('kill', 'kill', [CompletionResultType]::ParameterValue, 'SIGKILL a node')
            [CompletionResult]::new('power-loss', 'power-loss', [CompletionResultType]::ParameterValue, 'Cut a node''s power: SIGKILL of a node started with `--fault-fs lazy`, losing every write it had not fsync''d (`restart` brings it back)')
            [CompletionResult]::new('pause', 'pause', [CompletionResultType]::ParameterValue, 'SIGSTOP a node')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'SIGCONT a paused node')
            [CompletionResult]::new('restart', 'restart', [CompletionResultType]::ParameterValue, 'Restart a node with the same flags and data')
            [CompletionResult]::new('rolling-restart', 'rolling-restart', [CompletionResultType]::ParameterValue, 'Restart every node in turn without downtime: SIGTERM (a raft leader hands its leadership over first; raft followers go first, the leader last), wait for it to end, start it with the same flags and data, and go on once it answers VALTHREE.HEALTH (dynamo: and its missed writes were replayed). Fails if a node is not ready in 60 s')
            [CompletionResult]::new('partition', 'partition', [CompletionResultType]::ParameterValue, 'Cut node-to-node traffic between groups, `n1 | n2,n3`, or in a `--shape` (peer traffic only). Cut links drop calls, as a real network does: a caller waits for its deadline or its connection''s keepalive (1 s). In s3 mode the nodes outside the largest group lose the object store (on a tie, the last group keeps it)')
            [CompletionResult]::new('packet', 'packet', [CompletionResultType]::ParameterValue, 'Call-level packet faults on node-to-node links (paxos, raft, dynamo): each request and reply delayed, lost, a request duplicated or overtaken by the next; on every link, or on the links of the nodes named. They act on whole calls, not IP packets. `heal` ends them')
            [CompletionResult]::new('heal', 'heal', [CompletionResultType]::ParameterValue, 'Restore all node-to-node traffic: end the partition and the packet faults')
            [CompletionResult]::new('clock', 'clock', [CompletionResultType]::ParameterValue, 'Skew a node''s wall clock (testing): its timestamps, tombstone ages and hint windows read the skewed clock; timeouts and timers run on the monotonic clock and are not moved. A restart resets it')
            [CompletionResult]::new('add-node', 'add-node', [CompletionResultType]::ParameterValue, 'paxos, raft and dynamo modes: start one more node (empty) and add it to the membership while the cluster serves (paxos: joint consensus, then a rescan of every key; raft: a learner that catches up, then a voter; dynamo: it claims an even share of partitions, filled as a pending replica before the ring changes)')
            [CompletionResult]::new('remove-node', 'remove-node', [CompletionResultType]::ParameterValue, 'paxos, raft and dynamo modes: remove a node from the membership (dynamo: once its partitions have moved to the others), then stop it and delete its data')
            [CompletionResult]::new('down', 'down', [CompletionResultType]::ParameterValue, 'Stop every node (SIGTERM, then SIGKILL after a grace period)')
            break
        }
        'valthree;help;cluster;up' {
            break
        }
        'valthree;help;cluster;status' {
            break
        }
        'valthree;help;cluster;kill' {
            break
        }
        'valthree;help;cluster;power-loss' {
            break
        }
        'valthree;help;cluster;pause' {
            break
        }
        'valthree;help;cluster;resume' {
            break
        }
        'valthree;help;cluster;restart' {
            break
        }
        'valthree;help;cluster;rolling-restart' {
            break
        }
        'valthree;help;cluster;partition' {
            break
        }
        'valthree;help;cluster;packet' {
            break
        }
        'valthree;help;cluster;heal' {
            break
        }
        'valthree;help;cluster;clock' {
            [CompletionResult]::new('bump', 'bump', [CompletionResultType]::ParameterValue, 'Move it by MS milliseconds (negative: back), on top of any earlier bump')
            [CompletionResult]::new('strobe', 'strobe', [CompletionResultType]::ParameterValue, 'Make it jump between two offsets (milliseconds from the true time) every PERIOD_MS')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Back to the host''s clock')
            break
        }
        'valthree;help;cluster;clock;bump' {
            break
        }
        'valthree;help;cluster;clock;strobe' {
            break
        }
        'valthree;help;cluster;clock;reset' {
            break
        }
        'valthree;help;cluster;add-node' {
            break
        }
        'valthree;help;cluster;remove-node' {
            break
        }
        'valthree;help;cluster;down' {
            break
        }
        'valthree;help;backup' {
            break
        }
        'valthree;help;restore' {
            break
        }
        'valthree;help;check-history' {
            break
        }
        'valthree;help;demo' {
            break
        }
        'valthree;help;paxos-compact-ballots' {
            break
        }
        'valthree;help;s3-check' {
            break
        }
        'valthree;help;completions' {
            break
        }
        'valthree;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}

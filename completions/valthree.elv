
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
            cand check-history 'Check a recorded history for linearizability'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'valthree;serve'= {
            cand --mode 'How the cluster keeps itself consistent'
            cand --addr 'Address to serve the Redis protocol on'
            cand --data-dir 'Directory for this node''s data (in s3 mode without --s3-bucket: the embedded object store)'
            cand --requirepass 'Require clients to AUTH with this password'
            cand --maxclients 'Refuse connections beyond this many'
            cand --proto-max-bulk-len 'Longest bulk string a client may send (bytes; k, kb, m, mb, g, gb suffixes accepted)'
            cand --s3-endpoint 's3 mode: S3-compatible endpoint URL (e.g. http://127.0.0.1:9000); AWS when omitted'
            cand --s3-bucket 's3 mode: bucket holding the database (created if missing); without it the embedded local object store in --data-dir is used'
            cand --s3-key 's3 mode: object key of the database document'
            cand --s3-region 's3 mode: region'
            cand --s3-access-key 's3 mode: access key (default: the usual AWS credential chain)'
            cand --s3-secret-key 's3 mode: secret key'
            cand --s3-batch 's3 mode: group commit (one conditional PUT for all writes queued at once)'
            cand --json 'Log as JSON lines'
            cand -v 'More log output (-v debug, -vv trace); RUST_LOG overrides'
            cand --verbose 'More log output (-v debug, -vv trace); RUST_LOG overrides'
            cand --unsafe-stale-reads 'Test only: answer some reads from a stale snapshot, so the checker has a bug to catch'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;workload'= {
            cand --addrs 'Comma-separated addresses; client i talks to addrs[i % n]'
            cand --clients 'Concurrent clients, each with one operation outstanding at a time'
            cand --keys 'Size of the key set (small means contention, which is the point)'
            cand --duration 'Run for this long (e.g. 30s); the default when --ops is not given is 10s'
            cand --ops 'Run this many operations in all'
            cand --seed 'Seed of the operation streams: the same seed gives the same invocations'
            cand --history 'Where to write the JSONL history'
            cand --mix 'Relative weights of the operations'
            cand --timeout 'Per-operation client-side timeout; a timed-out operation is recorded as indeterminate'
            cand --html 'With --check, also write the HTML timeline here'
            cand --check-timeout 'With --check, the checker''s time limit'
            cand --ready-timeout 'Wait this long for every address to answer PING before starting'
            cand --check 'Check the history for linearizability at the end; exit 1 on a violation'
            cand --json 'Print the summary (and verdict) as JSON; no progress bar'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'valthree;check-history'= {
            cand --model 'The model of what each key may do'
            cand --html 'Also write a self-contained HTML timeline here'
            cand --timeout 'Give up (verdict unknown, exit 2) after this long, e.g. 60s, 5m'
            cand --json 'Print a machine-readable verdict'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
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
            cand check-history 'Check a recorded history for linearizability'
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'valthree;help;serve'= {
        }
        &'valthree;help;workload'= {
        }
        &'valthree;help;check-history'= {
        }
        &'valthree;help;completions'= {
        }
        &'valthree;help;help'= {
        }
    ]
    $completions[$command]
}

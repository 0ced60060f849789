
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
            cand completions 'Print a shell completion script'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'valthree;help;serve'= {
        }
        &'valthree;help;completions'= {
        }
        &'valthree;help;help'= {
        }
    ]
    $completions[$command]
}

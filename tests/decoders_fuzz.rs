//! Every decoder of outside input, fed random and mutated input on stable Rust (a seeded
//! equivalent of a fuzzing run; cargo-fuzz needs a nightly toolchain): the RESP request
//! decoder, the peer messages of paxos (protobuf) and raft (postcard), and the history parser.
//! None may panic, and the RESP decoder may not buffer past its bounds.
//!
//! `VALTHREE_FUZZ_ITERATIONS=1000000 cargo test --test decoders_fuzz --release` runs longer.

use bytes::BytesMut;
use prost::Message;
use tokio_util::codec::Decoder;
use valthree::peer::proto;
use valthree::resp::RespCodec;

fn iterations() -> usize {
    std::env::var("VALTHREE_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

/// Random bytes, or a valid sample with a few bytes flipped, cut or repeated.
fn input(rng: &mut fastrand::Rng, samples: &[Vec<u8>]) -> Vec<u8> {
    if rng.bool() || samples.is_empty() {
        let len = rng.usize(0..64);
        return (0..len).map(|_| rng.u8(..)).collect();
    }
    let mut bytes = samples[rng.usize(..samples.len())].clone();
    for _ in 0..rng.usize(1..4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.usize(..bytes.len());
        match rng.u8(0..4) {
            0 => bytes[at] = rng.u8(..),
            1 => bytes.truncate(at),
            2 => bytes.insert(at, *[b'\r', b'\n', b'*', b'$', b'-', b'9'].get(rng.usize(..6)).unwrap()),
            _ => {
                let tail = bytes[at..].to_vec();
                bytes.extend(tail);
            }
        }
    }
    bytes
}

#[test]
fn the_resp_decoder_never_panics_and_stays_bounded() {
    let mut rng = fastrand::Rng::with_seed(1);
    let samples: Vec<Vec<u8>> = [
        &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"[..],
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"PING\r\n",
        b"SET k \"a b\\x41\"\r\n",
        b"*1\r\n$-1\r\n",
        b"*-1\r\n*0\r\n",
        b"*2\r\n$4\r\nECHO\r\n$999999999999\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    for _ in 0..iterations() {
        let bytes = input(&mut rng, &samples);
        for authenticated in [true, false] {
            let mut codec = RespCodec::new(1 << 20);
            codec.authenticated = authenticated;
            let mut buf = BytesMut::from(&bytes[..]);
            // Feed what is there; every outcome (requests, need more, protocol error) is fine.
            while let Ok(Some(request)) = codec.decode(&mut buf) {
                assert!(request.iter().all(|arg| arg.len() <= 1 << 20), "a bulk past the bound");
            }
            assert!(buf.len() <= bytes.len());
        }
    }
}

#[test]
fn paxos_peer_messages_never_panic() {
    let mut rng = fastrand::Rng::with_seed(2);
    let batch = proto::PaxosBatch {
        from: 1,
        to: 0,
        messages: vec![proto::PaxosMessage {
            key: b"k".to_vec().into(),
            round: 7,
            request: Some(proto::paxos_message::Request::Accept(proto::Accept {
                ballot: Some(proto::Ballot { counter: 3, node: 1 }),
                value: Some(b"v".to_vec().into()),
                promise_next: true,
            })),
        }],
    };
    let forward = proto::ForwardRequest {
        from: 2,
        key: b"k".to_vec().into(),
        command: Some(proto::forward_request::Command::IncrBy(5)),
    };
    let samples = vec![batch.encode_to_vec(), forward.encode_to_vec()];
    for _ in 0..iterations() {
        let bytes = input(&mut rng, &samples);
        if let Ok(batch) = proto::PaxosBatch::decode(&bytes[..]) {
            for m in batch.messages {
                let _ = valthree::mode::paxos::decode_message(m);
            }
        }
        if let Ok(reply) = proto::PaxosReplies::decode(&bytes[..]) {
            for r in reply.replies {
                let _ = valthree::mode::paxos::decode_reply(r);
            }
        }
        if let Ok(request) = proto::ForwardRequest::decode(&bytes[..]) {
            let _ = valthree::mode::paxos::decode_forward(request);
        }
        let _ = proto::Config::decode(&bytes[..]);
    }
}

#[test]
fn raft_peer_messages_never_panic() {
    let mut rng = fastrand::Rng::with_seed(3);
    let samples = valthree::mode::raft::sample_messages();
    for _ in 0..iterations() {
        let bytes = input(&mut rng, &samples);
        valthree::mode::raft::decode_every_message(&bytes);
    }
}

#[test]
fn the_history_parser_never_panics() {
    let mut rng = fastrand::Rng::with_seed(4);
    let samples: Vec<Vec<u8>> = [
        &br#"{"index":0,"process":3,"type":"invoke","f":"set","key":"k1","value":"3-17","time":1203400}"#[..],
        br#"{"index":1,"process":"nemesis","type":"info","f":"kill","value":"n2","time":5}"#,
        br#"{"index":2,"process":5,"type":"ok","f":"incr","key":"k","value":9223372036854775807,"time":7}"#,
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    for _ in 0..iterations() / 4 {
        let lines: Vec<u8> = (0..rng.usize(1..5))
            .flat_map(|_| {
                let mut line = input(&mut rng, &samples);
                line.push(b'\n');
                line
            })
            .collect();
        let _ = valthree::history::read_history(&lines[..]);
    }
}

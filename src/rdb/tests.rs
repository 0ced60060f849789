//! The format against Redis' own files and against files broken on purpose.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::*;
use crate::error::Error;

/// A dump redis-server 7.0.15 wrote (RDB 10): strings in every encoding (raw, integers,
/// LZF), an expiry, a listpack list, hash and sorted set, an intset, a hash-table set, a
/// stream with a consumer group, a key in database 1 and a function library.
const REDIS7: &[u8] = include_bytes!("testdata/redis7.rdb");
/// The same server with listpacks and intsets turned off: a quicklist of plain nodes, and
/// hash-table sets and hashes, a skiplist sorted set (ZSET_2), uncompressed.
const REDIS7_PLAIN: &[u8] = include_bytes!("testdata/plain7.rdb");

fn read_all(bytes: &[u8]) -> crate::error::Result<Vec<Entry>> {
    let mut reader = RdbReader::new(bytes)?;
    let mut out = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        out.push(entry);
    }
    Ok(out)
}

fn strings(entries: &[Entry]) -> BTreeMap<(u64, Bytes), Bytes> {
    entries
        .iter()
        .filter_map(|e| match &e.value {
            Value::String(v) => Some(((e.db, e.key.clone()), v.clone())),
            Value::Skipped(_) => None,
        })
        .collect()
}

fn skipped(entries: &[Entry]) -> BTreeMap<Bytes, ValueType> {
    entries
        .iter()
        .filter_map(|e| match e.value {
            Value::Skipped(kind) => Some((e.key.clone(), kind)),
            Value::String(_) => None,
        })
        .collect()
}

#[test]
fn the_checksum_is_redis_crc64() {
    assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
}

#[test]
fn a_redis_7_dump_yields_its_strings_and_names_every_other_type() {
    let mut reader = RdbReader::new(REDIS7).unwrap();
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry().unwrap() {
        entries.push(entry);
    }
    assert_eq!(reader.version(), 10);
    assert_eq!(reader.functions_skipped(), 1);
    assert!(reader.aux().iter().any(|(k, v)| k.as_ref() == b"redis-ver" && v.as_ref() == b"7.0.15"));
    let s = strings(&entries);
    let db0 = |k: &str| s.get(&(0, Bytes::copy_from_slice(k.as_bytes()))).cloned();
    assert_eq!(db0("plain").as_deref(), Some(&b"hello"[..]));
    assert_eq!(db0("int").as_deref(), Some(&b"12345"[..]));
    assert_eq!(db0("neg").as_deref(), Some(&b"-7"[..]));
    assert_eq!(db0("big").as_deref(), Some(&b"4294967296"[..]));
    assert_eq!(db0("compressible").as_deref(), Some(&[b'a'; 200][..]));
    assert_eq!(db0("empty").as_deref(), Some(&b""[..]));
    assert_eq!(s.get(&(1, Bytes::from_static(b"other"))).map(|v| &v[..]), Some(&b"db1"[..]));
    let expiring = entries.iter().find(|e| e.key.as_ref() == b"expiring").unwrap();
    assert!(expiring.expires_at_ms.is_some_and(|ms| ms > 1_700_000_000_000));
    let kinds = skipped(&entries);
    let kind = |k: &'static str| kinds.get(&Bytes::from_static(k.as_bytes())).copied();
    assert_eq!(kind("list"), Some(ValueType::List));
    assert_eq!(kind("set"), Some(ValueType::Set));
    assert_eq!(kind("intset"), Some(ValueType::Set));
    assert_eq!(kind("zset"), Some(ValueType::SortedSet));
    assert_eq!(kind("hash"), Some(ValueType::Hash));
    assert_eq!(kind("stream"), Some(ValueType::Stream));
    assert_eq!(entries.len(), 14);
}

#[test]
fn plain_encodings_of_collections_are_skipped_too() {
    let entries = read_all(REDIS7_PLAIN).unwrap();
    let kinds: Vec<ValueType> = skipped(&entries).into_values().collect();
    assert_eq!(kinds.len(), 4, "{entries:?}");
    for kind in [ValueType::List, ValueType::Set, ValueType::SortedSet, ValueType::Hash] {
        assert!(kinds.contains(&kind), "{kind:?} in {kinds:?}");
    }
    assert_eq!(strings(&entries).len(), 1);
}

fn sample() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = vec![
        (b"".to_vec(), b"empty key".to_vec()),
        (b"empty value".to_vec(), Vec::new()),
        ((0..=255u8).collect(), (0..=255u8).rev().collect()),
        (b"12345".to_vec(), b"67890".to_vec()),
    ];
    // Lengths at every boundary of the variable-length encoding.
    for len in [63usize, 64, 16383, 16384, 70_000] {
        pairs.push((format!("len{len}").into_bytes(), vec![b'x'; len]));
    }
    pairs
}

fn written(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut writer = RdbWriter::new(Vec::new(), &[("valthree-ver", "test")], Some(pairs.len() as u64)).unwrap();
    for (k, v) in pairs {
        writer.write_string(k, v).unwrap();
    }
    assert_eq!(writer.keys(), pairs.len() as u64);
    writer.finish().unwrap()
}

#[test]
fn what_the_writer_writes_the_reader_reads_byte_for_byte() {
    let pairs = sample();
    let file = written(&pairs);
    assert!(file.starts_with(b"REDIS0009"));
    let entries = read_all(&file).unwrap();
    let got: Vec<(Vec<u8>, Vec<u8>)> = entries
        .iter()
        .map(|e| match &e.value {
            Value::String(v) => (e.key.to_vec(), v.to_vec()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, pairs);
    // The trailer is the CRC-64 of everything before it.
    let (body, trailer) = file.split_at(file.len() - 8);
    assert_eq!(u64::from_le_bytes(trailer.try_into().unwrap()), crc64(body));
}

#[test]
fn an_empty_keyspace_is_a_valid_file() {
    let file = RdbWriter::new(Vec::new(), &[], Some(0)).unwrap().finish().unwrap();
    assert!(read_all(&file).unwrap().is_empty());
}

fn is_format_error(result: &crate::error::Result<Vec<Entry>>) -> bool {
    matches!(result, Err(Error::Input(m)) if m.starts_with("not a valid RDB file"))
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for file in [written(&sample()[..4]), REDIS7.to_vec(), REDIS7_PLAIN.to_vec()] {
        for cut in 0..file.len() {
            let result = read_all(&file[..cut]);
            assert!(is_format_error(&result), "cut at {cut}: {result:?}");
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_is_caught_never_a_panic() {
    for file in [written(&sample()[..4]), REDIS7.to_vec()] {
        for at in 0..file.len() {
            for bit in [0x01u8, 0x80] {
                let mut broken = file.clone();
                broken[at] ^= bit;
                // The checksum catches what the structure does not.
                let result = read_all(&broken);
                assert!(is_format_error(&result), "bit {bit:#x} of byte {at}: {result:?}");
            }
        }
    }
}

#[test]
fn random_garbage_after_a_header_is_an_error_not_a_panic() {
    let mut rng = fastrand::Rng::with_seed(27);
    for _ in 0..2000 {
        let mut file = b"REDIS0010".to_vec();
        file.extend((0..rng.usize(0..64)).map(|_| rng.u8(..)));
        let result = read_all(&file);
        assert!(is_format_error(&result), "{file:?}: {result:?}");
    }
}

#[test]
fn lengths_the_file_cannot_back_are_refused_without_allocating_them() {
    // A string said to hold 2^64-1 bytes, and one said to hold 4 GiB in a 20-byte file.
    let mut huge = b"REDIS0009\x00\x01k\x81".to_vec();
    huge.extend(u64::MAX.to_be_bytes());
    assert!(is_format_error(&read_all(&huge)));
    let mut big = b"REDIS0009\x00\x01k\x80".to_vec();
    big.extend(u32::MAX.to_be_bytes());
    assert!(is_format_error(&read_all(&big)));
    // LZF claiming a gigabyte out of three bytes.
    let lzf = b"REDIS0009\x00\x01k\xc3\x03\x80\x40\x00\x00\x00\x00abc".to_vec();
    assert!(is_format_error(&read_all(&lzf)));
}

#[test]
fn headers_other_than_redis_rdb_are_refused() {
    for header in [&b"REDIX0009"[..], b"REDIS00a9", b"REDIS0013", b"REDIS0000", b"RED"] {
        assert!(RdbReader::new(header).is_err(), "{header:?}");
    }
}

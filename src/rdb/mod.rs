//! Redis' RDB file format: what `valthree backup` writes and `valthree restore` reads.
//!
//! An RDB file is a header (`REDIS` and a four-digit version), auxiliary fields (`AUX name
//! value`), then per database a `SELECTDB n`, an optional `RESIZEDB` hint and the entries —
//! each an optional expiry, a type byte, the key and the value — and finally `EOF` and the
//! CRC-64 (Jones polynomial, reflected, as Redis computes it: [`crc64`]) of every byte before
//! it, little-endian. Lengths are Redis' variable-length integers (6, 14, 32 or 64 bits);
//! strings are raw, integers written as text-free encodings, or LZF-compressed ([`lzf`]).
//!
//! valthree holds only strings, so the two directions are not symmetric:
//!
//! * [`RdbWriter`] writes version 9 (what Redis 5 and 6 write, and every later Redis loads):
//!   the header, a few AUX fields, `SELECTDB 0`, `RESIZEDB` when the key count is known, raw
//!   string entries (no compression, no expiries) and the checksum.
//! * [`RdbReader`] reads versions 1 to 12 (Redis 7.4) as a stream of [`Entry`]s: string
//!   values whatever their encoding, and every other type (lists, sets, sorted sets, hashes,
//!   streams, in every encoding, ziplists and listpacks included) walked over without being
//!   decoded, so the caller can count what it skipped. A module value has no length a reader
//!   can skip without the module, so it is an error, as it is for redis-server without it.
//!
//! No crate on crates.io fitted: `rdb` (0.3) parses through formatter callbacks meant for
//! dumping to JSON and decodes every type it meets, and none writes the format. Reading is
//! input: a truncated, corrupt or hostile file is an [`Error::Input`](crate::error::Error)
//! naming the byte offset, never a panic or an allocation the file's bytes cannot back.

mod lzf;
mod read;
mod write;

pub use read::{Entry, RdbReader, Value, ValueType};
pub use write::RdbWriter;

/// The CRC-64 Redis appends to an RDB file (crc-catalog's `CRC-64/REDIS`: the Jones
/// polynomial, reflected, no final xor; `crc64("123456789") = 0xe9c6d914c4b8d9ca`).
pub static CRC64: crc::Crc<u64, crc::Table<16>> = crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// The checksum of `bytes`, as Redis computes it.
pub fn crc64(bytes: &[u8]) -> u64 {
    CRC64.checksum(bytes)
}

/// Opcodes and type bytes, with Redis' names (`RDB_OPCODE_*`, `RDB_TYPE_*` in rdb.h).
mod code {
    pub const SLOT_INFO: u8 = 244;
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;

    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    pub const HASH_METADATA: u8 = 24;
    pub const HASH_LISTPACK_EX: u8 = 25;
}

/// The version [`RdbWriter`] writes.
pub const WRITE_VERSION: u32 = 9;
/// The newest version [`RdbReader`] reads (Redis 7.4 writes 12).
pub const MAX_READ_VERSION: u32 = 12;

#[cfg(test)]
mod tests;

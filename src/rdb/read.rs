//! Reading an RDB file as a stream of entries, strings decoded and every other type skipped.

use std::io::{BufRead, Read};

use bytes::Bytes;

use super::{CRC64, MAX_READ_VERSION, code, lzf};
use crate::error::{Error, Result};
use crate::store::MAX_VALUE_LEN;

/// The kinds of value an RDB file holds, whatever their encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    /// A string (the one kind valthree stores).
    String,
    /// A list (linked list, ziplist, quicklist).
    List,
    /// A set (hash table, intset, listpack).
    Set,
    /// A sorted set (skiplist, ziplist, listpack).
    SortedSet,
    /// A hash (hash table, zipmap, ziplist, listpack, with field expiries or not).
    Hash,
    /// A stream.
    Stream,
    /// A module's value.
    Module,
}

impl ValueType {
    /// The name `TYPE` answers for it.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::List => "list",
            ValueType::Set => "set",
            ValueType::SortedSet => "zset",
            ValueType::Hash => "hash",
            ValueType::Stream => "stream",
            ValueType::Module => "module",
        }
    }
}

/// A value as the reader hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string's bytes.
    String(Bytes),
    /// A value of another type, read past and not decoded.
    Skipped(ValueType),
}

/// One key of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The database it belongs to (`SELECTDB`).
    pub db: u64,
    /// The key.
    pub key: Bytes,
    /// Its expiry, in milliseconds since the Unix epoch, if it has one.
    pub expires_at_ms: Option<i64>,
    /// Its value.
    pub value: Value,
}

/// Counts the input read and checksums it, so errors can name an offset and the trailer
/// can be checked without holding the file.
struct Input<R> {
    inner: R,
    offset: u64,
    digest: crc::Digest<'static, u64, crc::Table<16>>,
}

impl<R: BufRead> Input<R> {
    fn corrupt(&self, what: impl std::fmt::Display) -> Error {
        Error::Input(format!("not a valid RDB file: {what} (at byte {})", self.offset))
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<()> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.digest.update(buf);
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(self.corrupt("the file ends early")),
            Err(e) => Err(Error::Io(format!("reading the RDB file: {e}"))),
        }
    }

    fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.exact(&mut b)?;
        Ok(b)
    }

    /// `n` bytes, read in bounded steps: a length the file cannot back ends in "ends early",
    /// never in an allocation of that length.
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>> {
        if n > MAX_VALUE_LEN as u64 {
            return Err(self.corrupt(format!("a string of {n} bytes (the most is {MAX_VALUE_LEN})")));
        }
        let mut out = Vec::with_capacity((n as usize).min(1 << 20));
        let got = (&mut self.inner)
            .take(n)
            .read_to_end(&mut out)
            .map_err(|e| Error::Io(format!("reading the RDB file: {e}")))?;
        self.digest.update(&out);
        self.offset += got as u64;
        if (got as u64) < n {
            return Err(self.corrupt("the file ends early"));
        }
        Ok(out)
    }

    /// Skips `n` bytes (checksummed all the same).
    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut chunk = [0u8; 8192];
        while n > 0 {
            let step = n.min(chunk.len() as u64) as usize;
            self.exact(&mut chunk[..step])?;
            n -= step as u64;
        }
        Ok(())
    }
}

/// A length, or the marker of a specially encoded string.
enum Length {
    Plain(u64),
    Encoded(u8),
}

/// Reads an RDB file entry by entry; [`RdbReader::next_entry`] returns `None` after `EOF`
/// once the checksum matched.
pub struct RdbReader<R> {
    input: Input<R>,
    version: u32,
    db: u64,
    finished: bool,
    aux: Vec<(Bytes, Bytes)>,
    functions: u64,
}

impl<R: BufRead> RdbReader<R> {
    /// Reads and checks the header.
    pub fn new(inner: R) -> Result<Self> {
        let mut input = Input { inner, offset: 0, digest: CRC64.digest() };
        let header: [u8; 9] = input.array()?;
        if &header[..5] != b"REDIS" {
            return Err(input.corrupt("it does not start with REDIS"));
        }
        let version = std::str::from_utf8(&header[5..])
            .ok()
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u32>().ok())
            .ok_or_else(|| input.corrupt("the version is not four digits"))?;
        if !(1..=MAX_READ_VERSION).contains(&version) {
            return Err(input.corrupt(format!("version {version} (this reader knows 1 to {MAX_READ_VERSION})")));
        }
        Ok(Self { input, version, db: 0, finished: false, aux: Vec::new(), functions: 0 })
    }

    /// The file's RDB version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The AUX fields read so far (all of them once the first entry is out: Redis writes
    /// them first).
    pub fn aux(&self) -> &[(Bytes, Bytes)] {
        &self.aux
    }

    /// Function libraries read past (Redis 7's `FUNCTION`s travel in its RDB files).
    pub fn functions_skipped(&self) -> u64 {
        self.functions
    }

    /// The bytes read so far.
    pub fn offset(&self) -> u64 {
        self.input.offset
    }

    /// The next key, or `None` at the end of a file whose checksum matched.
    pub fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.finished {
            return Ok(None);
        }
        let mut expires_at_ms = None;
        loop {
            let opcode = self.input.u8()?;
            match opcode {
                code::EOF => {
                    self.finish()?;
                    return Ok(None);
                }
                code::SELECTDB => {
                    self.db = self.length()?;
                }
                code::RESIZEDB => {
                    self.length()?;
                    self.length()?;
                }
                code::AUX => {
                    let name = self.string()?;
                    let value = self.string()?;
                    self.aux.push((name, value));
                }
                code::EXPIRETIME_MS => {
                    expires_at_ms = Some(i64::from_le_bytes(self.input.array()?));
                }
                code::EXPIRETIME => {
                    expires_at_ms = Some(i64::from(i32::from_le_bytes(self.input.array()?)) * 1000);
                }
                code::IDLE => {
                    self.length()?;
                }
                code::FREQ => {
                    self.input.u8()?;
                }
                code::SLOT_INFO => {
                    for _ in 0..3 {
                        self.length()?;
                    }
                }
                code::MODULE_AUX => {
                    self.length()?; // module id
                    self.length()?; // when_opcode
                    self.length()?; // when
                    self.skip_module_value()?;
                }
                code::FUNCTION2 => {
                    self.skip_string()?;
                    self.functions += 1;
                }
                code::FUNCTION_PRE_GA => {
                    return Err(self.input.corrupt("a function in Redis 7.0's release-candidate format"));
                }
                kind => {
                    let key = self.string()?;
                    let value = self.value(kind)?;
                    return Ok(Some(Entry { db: self.db, key, expires_at_ms, value }));
                }
            }
        }
    }

    /// Checks the trailer: versions 5 and later end in the CRC-64 of everything before it
    /// (zero when the writer had checksums off).
    fn finish(&mut self) -> Result<()> {
        self.finished = true;
        if self.version < 5 {
            return Ok(());
        }
        let computed = self.input.digest.clone().finalize();
        let mut trailer = [0u8; 8];
        self.input.exact(&mut trailer)?;
        let stored = u64::from_le_bytes(trailer);
        if stored != 0 && stored != computed {
            return Err(self.input.corrupt(format!("checksum {stored:#018x}, the content's is {computed:#018x}")));
        }
        Ok(())
    }

    fn length_or_encoding(&mut self) -> Result<Length> {
        let first = self.input.u8()?;
        Ok(match first >> 6 {
            0 => Length::Plain(u64::from(first & 0x3f)),
            1 => Length::Plain((u64::from(first & 0x3f) << 8) | u64::from(self.input.u8()?)),
            3 => Length::Encoded(first & 0x3f),
            _ => match first {
                0x80 => Length::Plain(u64::from(u32::from_be_bytes(self.input.array()?))),
                0x81 => Length::Plain(u64::from_be_bytes(self.input.array()?)),
                other => return Err(self.input.corrupt(format!("length prefix {other:#04x}"))),
            },
        })
    }

    fn length(&mut self) -> Result<u64> {
        match self.length_or_encoding()? {
            Length::Plain(n) => Ok(n),
            Length::Encoded(_) => Err(self.input.corrupt("an encoded string where a length belongs")),
        }
    }

    /// A string in any of its encodings: raw, an integer, or LZF-compressed.
    fn string(&mut self) -> Result<Bytes> {
        Ok(match self.length_or_encoding()? {
            Length::Plain(n) => Bytes::from(self.input.bytes(n)?),
            Length::Encoded(0) => Bytes::from((self.input.u8()? as i8).to_string()),
            Length::Encoded(1) => Bytes::from(i16::from_le_bytes(self.input.array()?).to_string()),
            Length::Encoded(2) => Bytes::from(i32::from_le_bytes(self.input.array()?).to_string()),
            Length::Encoded(3) => {
                let compressed_len = self.length()?;
                let len = self.length()?;
                if len > MAX_VALUE_LEN as u64 || len > lzf::max_output(compressed_len as usize) as u64 {
                    return Err(self.input.corrupt(format!("{compressed_len} compressed bytes said to hold {len}")));
                }
                let compressed = self.input.bytes(compressed_len)?;
                Bytes::from(lzf::decompress(&compressed, len as usize).map_err(|e| self.input.corrupt(e))?)
            }
            Length::Encoded(other) => return Err(self.input.corrupt(format!("string encoding {other}"))),
        })
    }

    /// Reads past a string without keeping it (a compressed one is not decompressed).
    fn skip_string(&mut self) -> Result<()> {
        match self.length_or_encoding()? {
            Length::Plain(n) => self.input.skip(n),
            Length::Encoded(0) => self.input.skip(1),
            Length::Encoded(1) => self.input.skip(2),
            Length::Encoded(2) => self.input.skip(4),
            Length::Encoded(3) => {
                let compressed_len = self.length()?;
                self.length()?;
                self.input.skip(compressed_len)
            }
            Length::Encoded(other) => Err(self.input.corrupt(format!("string encoding {other}"))),
        }
    }

    fn skip_strings(&mut self, n: u64) -> Result<()> {
        for _ in 0..n {
            self.skip_string()?;
        }
        Ok(())
    }

    /// A sorted set's score in the old text form: a length byte, or 253/254/255 for
    /// NaN/+inf/-inf.
    fn skip_text_double(&mut self) -> Result<()> {
        match self.input.u8()? {
            253..=255 => Ok(()),
            len => self.input.skip(u64::from(len)),
        }
    }

    fn value(&mut self, kind: u8) -> Result<Value> {
        let skipped = match kind {
            code::STRING => return Ok(Value::String(self.string()?)),
            code::LIST | code::SET => {
                let n = self.length()?;
                self.skip_strings(n)?;
                if kind == code::LIST { ValueType::List } else { ValueType::Set }
            }
            code::ZSET => {
                for _ in 0..self.length()? {
                    self.skip_string()?;
                    self.skip_text_double()?;
                }
                ValueType::SortedSet
            }
            code::ZSET_2 => {
                for _ in 0..self.length()? {
                    self.skip_string()?;
                    self.input.skip(8)?;
                }
                ValueType::SortedSet
            }
            code::HASH => {
                let n = self.length()?;
                self.skip_strings(n.saturating_mul(2))?;
                ValueType::Hash
            }
            // One blob each: the encoding lives inside the string.
            code::HASH_ZIPMAP | code::HASH_ZIPLIST | code::HASH_LISTPACK => {
                self.skip_string()?;
                ValueType::Hash
            }
            code::LIST_ZIPLIST => {
                self.skip_string()?;
                ValueType::List
            }
            code::SET_INTSET | code::SET_LISTPACK => {
                self.skip_string()?;
                ValueType::Set
            }
            code::ZSET_ZIPLIST | code::ZSET_LISTPACK => {
                self.skip_string()?;
                ValueType::SortedSet
            }
            code::LIST_QUICKLIST => {
                let n = self.length()?;
                self.skip_strings(n)?;
                ValueType::List
            }
            code::LIST_QUICKLIST_2 => {
                for _ in 0..self.length()? {
                    self.length()?; // the node's container: plain or packed
                    self.skip_string()?;
                }
                ValueType::List
            }
            code::HASH_METADATA | code::HASH_METADATA_PRE_GA => {
                if kind == code::HASH_METADATA {
                    self.input.skip(8)?; // the smallest field expiry
                }
                for _ in 0..self.length()? {
                    self.length()?; // the field's time to live
                    self.skip_string()?;
                    self.skip_string()?;
                }
                ValueType::Hash
            }
            code::HASH_LISTPACK_EX | code::HASH_LISTPACK_EX_PRE_GA => {
                if kind == code::HASH_LISTPACK_EX {
                    self.input.skip(8)?;
                }
                self.skip_string()?;
                ValueType::Hash
            }
            code::STREAM_LISTPACKS | code::STREAM_LISTPACKS_2 | code::STREAM_LISTPACKS_3 => {
                self.skip_stream(kind)?;
                ValueType::Stream
            }
            code::MODULE_2 => {
                self.length()?; // module id
                self.skip_module_value()?;
                ValueType::Module
            }
            code::MODULE_PRE_GA => {
                return Err(self.input.corrupt("a module value in the pre-4.0 format (not self-describing)"));
            }
            other => return Err(self.input.corrupt(format!("value type {other}"))),
        };
        Ok(Value::Skipped(skipped))
    }

    /// A stream: its listpacks, its metadata, its consumer groups with their pending lists.
    fn skip_stream(&mut self, kind: u8) -> Result<()> {
        let v2 = kind >= code::STREAM_LISTPACKS_2;
        for _ in 0..self.length()? {
            self.skip_string()?; // the master ID
            self.skip_string()?; // the listpack
        }
        // length, last ID; v2: first ID, max deleted ID, entries added.
        for _ in 0..if v2 { 8 } else { 3 } {
            self.length()?;
        }
        for _ in 0..self.length()? {
            self.skip_string()?; // group name
            for _ in 0..if v2 { 3 } else { 2 } {
                self.length()?; // last ID; v2: entries read
            }
            for _ in 0..self.length()? {
                self.input.skip(16 + 8)?; // a pending ID and its delivery time
                self.length()?; // delivery count
            }
            for _ in 0..self.length()? {
                self.skip_string()?; // consumer name
                self.input.skip(if kind >= code::STREAM_LISTPACKS_3 { 16 } else { 8 })?;
                let pending = self.length()?;
                self.input.skip(pending.saturating_mul(16))?;
            }
        }
        Ok(())
    }

    /// A module value in the self-describing format (`RDB_MODULE_OPCODE_*`), up to its EOF.
    fn skip_module_value(&mut self) -> Result<()> {
        loop {
            match self.length()? {
                0 => return Ok(()),
                1 | 2 => {
                    self.length()?;
                }
                3 => self.input.skip(4)?,
                4 => self.input.skip(8)?,
                5 => self.skip_string()?,
                other => return Err(self.input.corrupt(format!("module value opcode {other}"))),
            }
        }
    }
}

//! Writing an RDB file of strings.

use std::io::Write;

use super::{CRC64, WRITE_VERSION, code};
use crate::error::{Error, Result};

/// Writes an RDB file of string keys in database 0, checksumming as it goes: memory stays
/// one buffer whatever the number of keys.
pub struct RdbWriter<W: Write> {
    out: W,
    digest: crc::Digest<'static, u64, crc::Table<16>>,
    keys: u64,
}

impl<W: Write> RdbWriter<W> {
    /// Writes the header, the AUX fields given and `SELECTDB 0`, then `RESIZEDB` when the
    /// number of keys to come is known (redis-server sizes its table from it).
    pub fn new(out: W, aux: &[(&str, &str)], keys: Option<u64>) -> Result<Self> {
        let mut writer = Self { out, digest: CRC64.digest(), keys: 0 };
        writer.put(format!("REDIS{WRITE_VERSION:04}").as_bytes())?;
        for (name, value) in aux {
            writer.put(&[code::AUX])?;
            writer.string(name.as_bytes())?;
            writer.string(value.as_bytes())?;
        }
        writer.put(&[code::SELECTDB])?;
        writer.length(0)?;
        if let Some(keys) = keys {
            writer.put(&[code::RESIZEDB])?;
            writer.length(keys)?;
            writer.length(0)?; // keys with an expiry
        }
        Ok(writer)
    }

    /// Appends one string key.
    pub fn write_string(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put(&[code::STRING])?;
        self.string(key)?;
        self.string(value)?;
        self.keys += 1;
        Ok(())
    }

    /// The keys written so far.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// Writes `EOF` and the checksum, flushes, and hands the output back.
    pub fn finish(mut self) -> Result<W> {
        self.put(&[code::EOF])?;
        let checksum = self.digest.clone().finalize();
        self.out.write_all(&checksum.to_le_bytes()).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(self.out)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.digest.update(bytes);
        self.out.write_all(bytes).map_err(io)
    }

    /// Redis' variable-length integer: 6, 14, 32 or 64 bits.
    fn length(&mut self, n: u64) -> Result<()> {
        match n {
            0..0x40 => self.put(&[n as u8]),
            0x40..0x4000 => self.put(&[0x40 | (n >> 8) as u8, n as u8]),
            0x4000..=0xffff_ffff => {
                self.put(&[0x80])?;
                self.put(&(n as u32).to_be_bytes())
            }
            _ => {
                self.put(&[0x81])?;
                self.put(&n.to_be_bytes())
            }
        }
    }

    /// A raw string: its length, then its bytes (no integer or LZF encoding: any reader
    /// takes raw strings, and values are opaque bytes here).
    fn string(&mut self, bytes: &[u8]) -> Result<()> {
        self.length(bytes.len() as u64)?;
        self.put(bytes)
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io(format!("writing the RDB file: {e}"))
}

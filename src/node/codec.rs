//! The one binary encoding of the replicated modes' bytes on disk and on the wire (raft's log
//! entries, vote, snapshots and peer messages; dynamo's objects and peer messages), in
//! postcard's compact form (serde, varints, byte strings as they are). JSON spelled a value's
//! bytes as an array of numbers, four times their size; here a 64 MiB value costs 64 MiB and
//! a few bytes.
//!
//! Decoding is of input from disk or from a peer: a malformed message is an error, never a
//! panic and never a default.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes `value`. Only I/O-free in-memory types reach here, so failure means a bug.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(value).map_err(|e| format!("cannot encode: {e}"))
}

/// Decodes `bytes`, refusing trailing garbage.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!("malformed message: {} trailing bytes", rest.len())),
        Err(e) => Err(format!("malformed message: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Mutation, SetOptions};
    use bytes::Bytes;

    #[test]
    fn a_value_costs_its_size_on_the_wire() {
        let value = Bytes::from(vec![0xab; 1 << 20]);
        let mutation = Mutation::Set { key: Bytes::from_static(b"k"), value, options: SetOptions::default() };
        let bytes = encode(&mutation).unwrap();
        assert!(bytes.len() < (1 << 20) + 64, "{} bytes", bytes.len());
        assert_eq!(decode::<Mutation>(&bytes).unwrap(), mutation);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let bytes = encode(&(7u64, "x")).unwrap();
        assert!(decode::<(u64, String)>(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<(u64, String)>(&longer).unwrap_err().contains("trailing"));
        assert!(decode::<Mutation>(&[0xff; 3]).is_err());
    }
}

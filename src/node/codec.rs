//! The one binary encoding of the replicated modes' bytes on disk and on the wire (raft's log
//! entries, vote, snapshots and peer messages; dynamo's objects and peer messages), in
//! postcard's compact form (serde, varints, byte strings as they are). JSON spelled a value's
//! bytes as an array of numbers, four times their size; here a 64 MiB value costs 64 MiB and
//! a few bytes.
//!
//! Decoding is of input from disk or from a peer: a malformed message is an error, never a
//! panic and never a default. A peer's message is decoded with [`decode_within`], which
//! charges what its sequences and maps take in memory as they are decoded (see
//! [`super::metered`]): a vector's elements may take a byte each here and a hundred decoded.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes `value`. Only I/O-free in-memory types reach here, so failure means a bug.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_stdvec(value).map_err(|e| format!("cannot encode: {e}"))
}

/// Decodes `bytes`, refusing trailing garbage.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    decode_within(bytes, &|_| true).map_err(|refused| refused.message)
}

/// Why a message was not decoded.
#[derive(Debug)]
pub struct Refused {
    /// It would have taken more memory than there was room for (it may be well formed).
    pub no_room: bool,
    /// What was wrong, for the log and the caller.
    pub message: String,
}

/// Decodes `bytes`, refusing trailing garbage, asking `room` for the memory its sequences and
/// maps take (a few hundred KiB at a time, see [`super::metered`]): when `room` says no, the
/// decode stops there.
pub fn decode_within<T: DeserializeOwned>(bytes: &[u8], room: &dyn Fn(u64) -> bool) -> Result<T, Refused> {
    let meter = super::metered::Meter::new(room);
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let malformed = |message| Refused { no_room: false, message };
    let value = match T::deserialize(super::metered::Metered { inner: &mut deserializer, meter: &meter }) {
        Ok(value) => value,
        Err(_) if meter.refused() => {
            return Err(Refused {
                no_room: true,
                message: format!(
                    "a message of {} bytes would take more memory decoded than this node has room for (it \
                     had {} bytes)",
                    bytes.len(),
                    meter.granted()
                ),
            });
        }
        Err(e) => return Err(malformed(format!("malformed message: {e}"))),
    };
    match deserializer.finalize() {
        Ok([]) => Ok(value),
        Ok(rest) => Err(malformed(format!("malformed message: {} trailing bytes", rest.len()))),
        Err(e) => Err(malformed(format!("malformed message: {e}"))),
    }
}

/// A refused decode of a peer's call as its status: `RESOURCE_EXHAUSTED` without room for it,
/// `INVALID_ARGUMENT` when malformed.
impl From<Refused> for tonic::Status {
    fn from(refused: Refused) -> Self {
        match refused.no_room {
            true => tonic::Status::resource_exhausted(refused.message),
            false => tonic::Status::invalid_argument(refused.message),
        }
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
    fn what_a_vector_decodes_to_is_charged_and_refused_past_the_room() {
        // A million blank elements: two bytes each here, far more decoded.
        type Element = (u64, Option<Mutation>);
        let mut bytes = encode(&1_000_000u64).unwrap();
        bytes.extend([0u8, 0].repeat(1_000_000));
        let granted = std::cell::Cell::new(0u64);
        let room = |bytes: u64| {
            let more = granted.get() + bytes <= 64 << 20;
            if more {
                granted.set(granted.get() + bytes);
            }
            more
        };
        let refused = decode_within::<Vec<Element>>(&bytes, &room).unwrap_err();
        assert!(refused.no_room && refused.message.contains("room"), "{refused:?}");
        // With room enough it decodes, charged what the vector holds and no more.
        granted.set(0);
        let decoded = decode_within::<Vec<Element>>(&bytes, &|bytes| {
            granted.set(granted.get() + bytes);
            true
        })
        .unwrap();
        assert_eq!(decoded.len(), 1_000_000);
        let held = (decoded.capacity() * std::mem::size_of::<Element>()) as u64;
        assert!(granted.get() >= held, "{} granted for {held}", granted.get());
        assert!(granted.get() <= held + crate::node::metered::METER_STEP, "{} granted for {held}", granted.get());
        assert!(held > 64 << 20, "the first decode was refused before it held all this");
        // Tuples and structs are not sequences: a small message asks for nothing.
        let small: (u64, Option<Mutation>) = (7, None);
        let none = |_: u64| false;
        assert_eq!(decode_within::<(u64, Option<Mutation>)>(&encode(&small).unwrap(), &none).unwrap(), small);
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

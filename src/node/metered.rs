//! A serde deserializer that meters what a decode takes in memory beyond its input, taken
//! from a [`Meter`] before it is allocated: a sequence's elements as a `Vec` holds them (serde
//! reserves what the format announces, up to 1 MiB, then the vector doubles as it fills), a
//! map's entries at twice their size (a tree's nodes have slack), and each byte string or
//! string an allocation's overhead beside its bytes.
//!
//! Why: postcard writes a vector as its length and its elements, and an element may take a
//! byte or two on the wire (a blank raft entry, a dynamo GET of the empty key) and a hundred
//! decoded, so a message from a peer could decode to fifty times its size before any handler
//! looked at it. The peer message budget charges a message's bytes when they arrive; what
//! their decoding adds is charged here, as it happens, and the decode stops with an error as
//! soon as the meter has no more room. The bytes of byte strings are not metered: a decoded
//! byte string costs the input bytes it was copied from (the caller drops the input once
//! decoded), but each is an allocation of its own, which costs more than a short string's
//! bytes.
//!
//! The wrapper is transparent otherwise: every call goes to the wrapped deserializer, every
//! visitor, sequence, map and enum it hands out is wrapped in turn, so nested collections
//! are metered too.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

/// How much a decode has taken, and where it asks for more room.
pub struct Meter<'m> {
    taken: Cell<u64>,
    granted: Cell<u64>,
    refused: Cell<bool>,
    room: &'m dyn Fn(u64) -> bool,
}

/// The room a meter asks for at a time: it asks its `room` for at least this much, so a
/// decode of many elements asks rarely.
pub const METER_STEP: u64 = 256 << 10;

impl<'m> Meter<'m> {
    /// A meter that asks `room` for what decoding takes (at least [`METER_STEP`] bytes at a
    /// time); when `room` says no, the decode fails.
    pub fn new(room: &'m dyn Fn(u64) -> bool) -> Self {
        Self { taken: Cell::new(0), granted: Cell::new(0), refused: Cell::new(false), room }
    }

    /// What the decode has been granted so far.
    pub fn granted(&self) -> u64 {
        self.granted.get()
    }

    /// Whether the decode stopped because `room` said no (a format may not keep the error's
    /// message: postcard does not).
    pub fn refused(&self) -> bool {
        self.refused.get()
    }

    /// Takes `bytes`, or says why not.
    fn take<E: de::Error>(&self, bytes: u64) -> Result<(), E> {
        let taken = self.taken.get().saturating_add(bytes);
        self.taken.set(taken);
        if taken > self.granted.get() {
            let more = (taken - self.granted.get()).max(METER_STEP);
            if !(self.room)(more) {
                self.refused.set(true);
                return Err(E::custom(format!(
                    "decoding it would take more than the {} bytes of memory this node has room for",
                    self.granted.get()
                )));
            }
            self.granted.set(self.granted.get() + more);
        }
        Ok(())
    }

    /// Takes what the allocation of a string of `len` bytes costs beside them, or says why not.
    fn allocation<E: de::Error>(&self, len: usize) -> Result<(), E> {
        match len {
            0 => Ok(()),
            _ => self.take(ALLOCATION),
        }
    }

    /// Takes what one map entry of type `T` costs, or says why not.
    fn entry<T, E: de::Error>(&self) -> Result<(), E> {
        self.take(2 * std::mem::size_of::<T>().max(1) as u64)
    }
}

/// What serde's `Vec` reserves at most before its first element, whatever length the format
/// announces (serde's own cap).
const PREALLOCATED: usize = 1 << 20;

/// What an allocation of its own (a byte string's, a string's) costs beside its bytes.
const ALLOCATION: u64 = 32;

/// A deserializer whose collections are metered by `meter`.
pub struct Metered<'a, 'm, D> {
    /// The deserializer wrapped (postcard's).
    pub inner: D,
    /// Where what the decode takes is charged.
    pub meter: &'a Meter<'m>,
}

/// A visitor (or seed, sequence, map, enum, variant) wrapped so that whatever it hands on is
/// metered.
struct Wrap<'a, 'm, T> {
    inner: T,
    meter: &'a Meter<'m>,
    /// A sequence of fixed length (a tuple's or struct's fields, held inline): its elements
    /// are not charged, only what they hold.
    fixed: bool,
}

impl<'a, 'm, T> Wrap<'a, 'm, T> {
    fn new(inner: T, meter: &'a Meter<'m>) -> Self {
        Self { inner, meter, fixed: false }
    }

    fn fixed(inner: T, meter: &'a Meter<'m>) -> Self {
        Self { inner, meter, fixed: true }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident ( $($arg:ident : $ty:ty),* )),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($arg,)* Wrap::new(visitor, self.meter))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Metered<'_, '_, D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any(),
        deserialize_bool(),
        deserialize_i8(),
        deserialize_i16(),
        deserialize_i32(),
        deserialize_i64(),
        deserialize_i128(),
        deserialize_u8(),
        deserialize_u16(),
        deserialize_u32(),
        deserialize_u64(),
        deserialize_u128(),
        deserialize_f32(),
        deserialize_f64(),
        deserialize_char(),
        deserialize_str(),
        deserialize_string(),
        deserialize_bytes(),
        deserialize_byte_buf(),
        deserialize_option(),
        deserialize_unit(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_seq(),
        deserialize_map(),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(),
        deserialize_ignored_any(),
    );

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple(len, Wrap::fixed(visitor, self.meter))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple_struct(name, len, Wrap::fixed(visitor, self.meter))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(name, fields, Wrap::fixed(visitor, self.meter))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident ( $ty:ty )),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, '_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_string(String),
        visit_byte_buf(Vec<u8>),
    );

    // Decoded from borrowed input, these are copied into an allocation of their own.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.meter.allocation(v.len())?;
        self.inner.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.meter.allocation(v.len())?;
        self.inner.visit_borrowed_str(v)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        self.meter.allocation(v.len())?;
        self.inner.visit_bytes(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.meter.allocation(v.len())?;
        self.inner.visit_borrowed_bytes(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Metered { inner: d, meter: self.meter })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Metered { inner: d, meter: self.meter })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(Seq { inner: seq, meter: self.meter, fixed: self.fixed, len: 0, capacity: None })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(Wrap::new(map, self.meter))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(Wrap::new(data, self.meter))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrap<'_, '_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(Metered { inner: d, meter: self.meter })
    }
}

/// A sequence being decoded, and the vector its elements go to as the meter sees it.
struct Seq<'a, 'm, A> {
    inner: A,
    meter: &'a Meter<'m>,
    /// A tuple's or struct's fields, held inline: not charged, only what they hold.
    fixed: bool,
    /// Elements decoded, and the vector's capacity (once its element type is known).
    len: usize,
    capacity: Option<usize>,
}

impl<A> Seq<'_, '_, A> {
    /// Takes what the vector reserves before its element of type `T` at `len` (`hint`
    /// elements announced), as `Vec` grows: serde's preallocation, then doubling.
    fn reserve<T, E: de::Error>(&mut self, hint: Option<usize>) -> Result<(), E> {
        let size = std::mem::size_of::<T>().max(1);
        let capacity = match self.capacity {
            Some(capacity) => capacity,
            None => {
                let preallocated = hint.unwrap_or(0).min(PREALLOCATED / size);
                self.meter.take((preallocated * size) as u64)?;
                preallocated
            }
        };
        let grown = match self.len < capacity {
            true => capacity,
            false => (2 * capacity).max(4).max(self.len + 1),
        };
        self.meter.take(((grown - capacity) * size) as u64)?;
        self.capacity = Some(grown);
        Ok(())
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, '_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        // Within what is reserved already nothing is taken (the common case: a byte at a time
        // of a snapshot's chunk).
        if !self.fixed && self.capacity.is_none_or(|capacity| self.len >= capacity) {
            let hint = self.inner.size_hint();
            // Past the last element the format says so (postcard counts down): nothing is pushed.
            if hint != Some(0) {
                self.reserve::<T::Value, A::Error>(hint.map(|left| left + self.len))?;
            }
        }
        // An element smaller than a pointer owns no memory of its own (a byte of a snapshot's
        // chunk): it is decoded as it is, without the wrapping.
        let element = match std::mem::size_of::<T::Value>() < std::mem::size_of::<usize>() {
            true => self.inner.next_element_seed(seed)?,
            false => self.inner.next_element_seed(Wrap::new(seed, self.meter))?,
        };
        self.len += 1;
        Ok(element)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, '_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.meter.entry::<K::Value, A::Error>()?;
        self.inner.next_key_seed(Wrap::new(seed, self.meter))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.meter.entry::<V::Value, A::Error>()?;
        self.inner.next_value_seed(Wrap::new(seed, self.meter))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'a, 'm, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'a, 'm, A> {
    type Error = A::Error;
    type Variant = Wrap<'a, 'm, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self::Variant), A::Error> {
        let (value, variant) = self.inner.variant_seed(Wrap::new(seed, self.meter))?;
        Ok((value, Wrap::new(variant, self.meter)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<'_, '_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(Wrap::new(seed, self.meter))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(len, Wrap::fixed(visitor, self.meter))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(fields, Wrap::fixed(visitor, self.meter))
    }
}

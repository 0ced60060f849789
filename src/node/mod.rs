//! What every node shares, whatever its mode.

mod faults;

pub use faults::{Faults, OBJECT_STORE};

//! The arguments of one request, as a command's `parse` reads them.

use bytes::Bytes;

use crate::errinput;
use crate::error::Result;

/// A cursor over a command's arguments (the name already taken off).
pub struct Args {
    name: &'static str,
    rest: std::vec::IntoIter<Bytes>,
}

impl Args {
    /// The arguments after the command `name` (lowercase, as in the command table).
    pub(super) fn new(name: &'static str, rest: std::vec::IntoIter<Bytes>) -> Self {
        Self { name, rest }
    }

    /// The next argument. Arity is checked before parsing, so a missing one is a syntax error.
    pub fn next_bytes(&mut self) -> Result<Bytes> {
        self.rest.next().ok_or_else(|| errinput!("syntax error"))
    }

    /// The next argument, if any.
    pub fn try_next(&mut self) -> Option<Bytes> {
        self.rest.next()
    }

    /// The next argument as an integer, with Redis' error text.
    pub fn next_i64(&mut self) -> Result<i64> {
        let arg = self.next_bytes()?;
        crate::store::parse_i64(&arg).ok_or_else(|| errinput!("{}", crate::store::NOT_AN_INTEGER))
    }

    /// Every remaining argument.
    pub fn rest(&mut self) -> Vec<Bytes> {
        self.rest.by_ref().collect()
    }

    /// How many arguments are left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The lowercase command name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Fails with "syntax error" when arguments are left over.
    pub fn finish(&mut self) -> Result<()> {
        match self.rest.next() {
            None => Ok(()),
            Some(_) => Err(errinput!("syntax error")),
        }
    }
}

/// Lowercases an argument for comparison with option names.
pub fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

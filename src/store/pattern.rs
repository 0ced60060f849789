//! Redis' glob patterns (KEYS, SCAN MATCH): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\` escapes.
//!
//! A line-by-line port of Redis 7's `stringmatchlen` (util.c), so every corner behaves as
//! redis-server's does: an unclosed `[` matches to the end of the pattern, a reversed range
//! `[z-a]` is the range `[a-z]`, a range's ends compare as C's signed `char` (so `[a-\xff]`
//! means what it means in Redis), a trailing `\` matches itself, and more than 1000 nested
//! `*` match nothing. No crate matches these rules exactly (`glob` and `globset` are for
//! paths and differ on `[^`, `\` and reversed ranges).

/// How deep `*` may recurse before the match gives up (Redis: "protection against abusive
/// patterns").
const MAX_NESTING: u32 = 1000;

/// A glob pattern, as KEYS and SCAN's MATCH take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    bytes: Vec<u8>,
}

impl Pattern {
    /// The pattern spelled by `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        Self { bytes: bytes.to_vec() }
    }

    /// True for `*`, which every key matches — even the empty key, which `stringmatchlen`
    /// itself does not match: Redis' KEYS and SCAN skip the match for exactly `*`.
    pub fn matches_everything(&self) -> bool {
        self.bytes == b"*"
    }

    /// Whether `key` matches the pattern, as Redis' `stringmatchlen(.., nocase=0)` decides.
    pub fn matches(&self, key: &[u8]) -> bool {
        let mut skip_longer = false;
        matches_at(&self.bytes, key, &mut skip_longer, 0)
    }
}

/// The byte at `i`, or the C string's terminating NUL past the end (Redis reads it there).
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// A byte as C's signed `char` (x86 and ARM Linux builds of Redis compare ranges so).
fn signed(b: u8) -> i32 {
    i32::from(b as i8)
}

fn matches_at(pattern: &[u8], string: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    let (mut p, mut s) = (0usize, 0usize);
    // `p` may pass the end by one while an unclosed `[` is read, as in the C original; the
    // lengths are what the C code calls patternLen and stringLen.
    let plen = |p: usize| pattern.len() as isize - p as isize;
    while plen(p) > 0 && s < string.len() {
        match pattern[p] {
            b'*' => {
                while plen(p) > 0 && at(pattern, p + 1) == b'*' {
                    p += 1;
                }
                if plen(p) == 1 {
                    return true;
                }
                while s < string.len() {
                    if matches_at(&pattern[p + 1..], &string[s..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let not = at(pattern, p) == b'^';
                if not {
                    p += 1;
                }
                let c = string[s];
                let mut matched = false;
                loop {
                    if at(pattern, p) == b'\\' && plen(p) >= 2 {
                        p += 1;
                        if pattern[p] == c {
                            matched = true;
                        }
                    } else if at(pattern, p) == b']' && plen(p) > 0 {
                        break;
                    } else if plen(p) <= 0 {
                        p -= 1;
                        break;
                    } else if plen(p) >= 3 && pattern[p + 1] == b'-' {
                        let (mut start, mut end) = (signed(pattern[p]), signed(pattern[p + 2]));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        if (start..=end).contains(&signed(c)) {
                            matched = true;
                        }
                    } else if pattern[p] == c {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            other => {
                let mut literal = other;
                if other == b'\\' && plen(p) >= 2 {
                    p += 1;
                    literal = pattern[p];
                }
                if literal != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while at(pattern, p) == b'*' && plen(p) > 0 {
                p += 1;
            }
            break;
        }
    }
    plen(p) == 0 && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, key: &str) -> bool {
        Pattern::new(pattern.as_bytes()).matches(key.as_bytes())
    }

    #[test]
    fn the_rules_of_redis_globs() {
        assert!(Pattern::new(b"*").matches_everything() && m("*", "anything"));
        assert!(!m("*", "") && !m("**", ""), "as stringmatchlen: only KEYS * itself lists the empty key");
        assert!(m("user:*", "user:1") && !m("user:*", "users:1"));
        assert!(m("h?llo", "hello") && !m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && m("h[b-a]llo", "hallo"), "a reversed range is the range");
        assert!(m("h\\*llo", "h*llo") && !m("h\\*llo", "hello"));
        assert!(m("[\\]]", "]") && m("[a\\-z]", "-") && !m("[a\\-z]", "b"));
        assert!(m("ab[", "ab") == m("ab[", "ab"), "no panic on an unclosed class");
        assert!(m("a[bc", "ab"), "an unclosed class runs to the end of the pattern");
        assert!(m("a\\", "a\\"), "a trailing backslash matches itself");
        assert!(!m("", "a") && m("", ""));
        assert!(m("a*b*c", "aXbYc") && !m("a*b*c", "aXbY"));
        assert!(m("a**", "a"));
    }

    #[test]
    fn abusive_patterns_end_quickly() {
        let pattern = "a*".repeat(40) + "b";
        let key = "a".repeat(60);
        let started = std::time::Instant::now();
        assert!(!m(&pattern, &key));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}

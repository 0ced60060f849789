//! LZF decompression, as liblzf's `lzf_decompress` (which Redis uses for strings in RDB
//! files when `rdbcompression` is on). The input is a file's bytes: every back-reference and
//! literal run is checked against the buffers, so a corrupt stream is an error.

/// Decompresses `input` into exactly `expected` bytes, or says why it cannot.
pub fn decompress(input: &[u8], expected: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(expected);
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            // A literal run of ctrl + 1 bytes.
            let run = ctrl + 1;
            let Some(literal) = input.get(ip..ip + run) else {
                return Err("LZF literal run past the end of the input".into());
            };
            if out.len() + run > expected {
                return Err("LZF output longer than announced".into());
            }
            out.extend_from_slice(literal);
            ip += run;
        } else {
            // A back-reference: length (3 bits, extended by a byte when 7) and distance.
            let mut len = ctrl >> 5;
            if len == 7 {
                let Some(&more) = input.get(ip) else { return Err("LZF reference cut short".into()) };
                len += usize::from(more);
                ip += 1;
            }
            let Some(&low) = input.get(ip) else { return Err("LZF reference cut short".into()) };
            ip += 1;
            let distance = ((ctrl & 0x1f) << 8) + usize::from(low) + 1;
            let len = len + 2;
            if distance > out.len() {
                return Err("LZF reference before the start of the output".into());
            }
            if out.len() + len > expected {
                return Err("LZF output longer than announced".into());
            }
            // Byte by byte: a reference may overlap the bytes it produces (a run).
            let start = out.len() - distance;
            for i in 0..len {
                out.push(out[start + i]);
            }
        }
    }
    if out.len() != expected {
        return Err(format!("LZF output of {} bytes, {expected} announced", out.len()));
    }
    Ok(out)
}

/// The longest output any LZF stream of `compressed` bytes can produce: a back-reference of
/// at most 3 bytes yields at most 264. Larger claims come from a corrupt file, and are refused
/// before anything is allocated for them.
pub fn max_output(compressed: usize) -> usize {
    compressed.saturating_mul(88)
}

//! Cutting a byte stream into newline-delimited records. Pure: bytes in, records out.
//!
//! A record is the bytes before `\n`, without a trailing `\r`. A record longer than
//! the limit is not buffered: its bytes are dropped as they arrive and it is reported
//! once as [`Frame::TooLong`], so a 10 MB line costs no more memory than the limit.

/// What the framer found in the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Record(&'a [u8]),
    /// A record that exceeded the limit; `len` is its full length in bytes.
    TooLong {
        len: usize,
    },
}

#[derive(Debug)]
pub struct LineFramer {
    max_len: usize,
    /// Bytes of an unfinished record carried over from the previous chunk.
    partial: Vec<u8>,
    /// Set while skipping the rest of an over-long record: bytes skipped so far.
    skipping: Option<usize>,
}

impl LineFramer {
    pub fn new(max_len: usize) -> LineFramer {
        LineFramer {
            max_len,
            partial: Vec::new(),
            skipping: None,
        }
    }

    /// Feeds one chunk; calls `emit` for every complete record in it, in order.
    pub fn feed(&mut self, mut chunk: &[u8], mut emit: impl FnMut(Frame<'_>)) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|&b| b == b'\n');
            let (piece, rest, complete) = match newline {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &chunk[chunk.len()..], false),
            };
            chunk = rest;
            if let Some(skipped) = self.skipping.as_mut() {
                *skipped += piece.len() + usize::from(complete);
                if complete {
                    emit(Frame::TooLong { len: *skipped - 1 });
                    self.skipping = None;
                }
                continue;
            }
            let total = self.partial.len() + piece.len();
            if total > self.max_len + 1
                || (complete && trim_cr_len(&self.partial, piece) > self.max_len)
            {
                if complete {
                    emit(Frame::TooLong { len: total });
                } else {
                    self.skipping = Some(total);
                }
                self.partial.clear();
                continue;
            }
            if !complete {
                self.partial.extend_from_slice(piece);
            } else if self.partial.is_empty() {
                emit(Frame::Record(strip_cr(piece)));
            } else {
                self.partial.extend_from_slice(piece);
                let record = std::mem::take(&mut self.partial);
                emit(Frame::Record(strip_cr(&record)));
                self.partial = record;
                self.partial.clear();
            }
        }
    }

    /// At end of input: the unterminated last record, if any (as `nc` sends it
    /// when the peer closes without a final newline).
    pub fn finish(&mut self, mut emit: impl FnMut(Frame<'_>)) {
        if let Some(skipped) = self.skipping.take() {
            emit(Frame::TooLong { len: skipped });
        } else if !self.partial.is_empty() {
            let record = std::mem::take(&mut self.partial);
            emit(Frame::Record(strip_cr(&record)));
        }
    }
}

fn strip_cr(record: &[u8]) -> &[u8] {
    record.strip_suffix(b"\r").unwrap_or(record)
}

fn trim_cr_len(partial: &[u8], piece: &[u8]) -> usize {
    let total = partial.len() + piece.len();
    let ends_cr = piece.last().or(partial.last()) == Some(&b'\r');
    total - usize::from(ends_cr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut framer = LineFramer::new(max);
        let mut out = Vec::new();
        let mut push = |f: Frame<'_>| {
            out.push(match f {
                Frame::Record(r) => String::from_utf8_lossy(r).into_owned(),
                Frame::TooLong { len } => format!("<too long: {len}>"),
            })
        };
        for c in chunks {
            framer.feed(c, &mut push);
        }
        framer.finish(&mut push);
        out
    }

    #[test]
    fn splits_lines_across_chunks() {
        assert_eq!(
            frames(100, &[b"a b\nc", b"d\r\n\nef"]),
            ["a b", "cd", "", "ef"]
        );
        assert_eq!(frames(100, &[b"x", b"y", b"z\n"]), ["xyz"]);
        assert!(frames(100, &[]).is_empty());
    }

    #[test]
    fn over_long_records_are_reported_not_buffered() {
        assert_eq!(
            frames(3, &[b"abc\nabcd\nok\n"]),
            ["abc", "<too long: 4>", "ok"]
        );
        assert_eq!(
            frames(3, &[b"ab", b"cdef", b"gh\nxy\n"]),
            ["<too long: 8>", "xy"]
        );
        assert_eq!(frames(3, &[b"abc\r\n"]), ["abc"]);
        assert_eq!(frames(3, &[b"abcdefgh"]), ["<too long: 8>"]);
    }

    #[test]
    fn skipping_keeps_memory_at_the_limit() {
        let mut framer = LineFramer::new(10);
        let big = vec![b'x'; 1 << 20];
        framer.feed(&big, |_| {});
        framer.feed(&big, |_| {});
        assert!(framer.partial.capacity() <= 64);
    }
}

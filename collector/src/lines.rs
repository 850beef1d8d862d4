//! Splitting a byte stream (a child's output, a growing file) into text lines.
//!
//! Output arrives in arbitrary chunks, so a line may be split across reads; the splitter keeps
//! the unfinished part until its newline arrives. Lines end at `\n` (a trailing `\r` is dropped,
//! as in [`str::lines`]); bytes that are not UTF-8 are replaced, which cannot touch a metric, since
//! names and numbers are ASCII. A line that grows past [`MAX_LINE_BYTES`] without a newline (a
//! progress bar redrawn with `\r` for an hour) is cut there and parsed in pieces, so a trial cannot
//! make the collector's memory grow without bound.
use std::borrow::Cow;

/// Longest line kept whole. Katib reads lines with Go's `bufio.Scanner`, which fails on lines
/// over 64 KiB; 1 MiB is generous for any metrics line and still a small buffer.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// A UTF-8 byte-order mark, which some loggers write at the start of a file.
const BOM: &str = "\u{feff}";

/// Turns chunks of bytes into lines; see the module docs.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    partial: Vec<u8>,
    at_start: bool,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl LineSplitter {
    /// A splitter at the start of a stream.
    pub fn new() -> Self {
        Self {
            partial: Vec::new(),
            at_start: true,
        }
    }

    /// Feeds the next chunk, calling `on_line` for every line it completes.
    pub fn feed(&mut self, mut chunk: &[u8], on_line: &mut impl FnMut(&str)) {
        while let Some(newline) = chunk.iter().position(|&byte| byte == b'\n') {
            let (line, rest) = chunk.split_at(newline);
            chunk = &rest[1..];
            if self.partial.is_empty() {
                self.emit(line, on_line);
            } else {
                self.append(line, on_line);
                let whole = std::mem::take(&mut self.partial);
                self.emit(&whole, on_line);
                self.partial = whole;
                self.partial.clear();
            }
        }
        self.append(chunk, on_line);
    }

    /// Ends the stream: the unterminated last line, if any, is a line too.
    pub fn finish(&mut self, on_line: &mut impl FnMut(&str)) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.emit(&rest, on_line);
        }
    }

    /// Forgets the unfinished line and starts over, for a file that was truncated or replaced.
    pub fn reset(&mut self) {
        self.partial.clear();
        self.at_start = true;
    }

    /// Adds bytes of an unfinished line, cutting it at [`MAX_LINE_BYTES`].
    fn append(&mut self, mut bytes: &[u8], on_line: &mut impl FnMut(&str)) {
        while self.partial.len() + bytes.len() > MAX_LINE_BYTES {
            let room = MAX_LINE_BYTES - self.partial.len();
            self.partial.extend_from_slice(&bytes[..room]);
            bytes = &bytes[room..];
            let full = std::mem::take(&mut self.partial);
            self.emit(&full, on_line);
        }
        self.partial.extend_from_slice(bytes);
    }

    fn emit(&mut self, line: &[u8], on_line: &mut impl FnMut(&str)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text: Cow<'_, str> = String::from_utf8_lossy(line);
        let text = if std::mem::take(&mut self.at_start) {
            text.strip_prefix(BOM).unwrap_or(&text)
        } else {
            &text
        };
        on_line(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::new();
        let mut lines = Vec::new();
        let mut collect = |line: &str| lines.push(line.to_owned());
        for chunk in chunks {
            splitter.feed(chunk, &mut collect);
        }
        splitter.finish(&mut collect);
        lines
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        assert_eq!(
            split(&[b"lo", b"ss=1\nacc", b"=2\n", b"\n", b"tail"]),
            ["loss=1", "acc=2", "", "tail"]
        );
        assert_eq!(split(&[b"a\r\nb\r\n"]), ["a", "b"]);
        assert!(split(&[b""]).is_empty());
    }

    #[test]
    fn a_leading_bom_is_dropped_once() {
        assert_eq!(
            split(&["\u{feff}loss=1\n\u{feff}x\n".as_bytes()]),
            ["loss=1", "\u{feff}x"]
        );
        // Split inside the BOM itself.
        let bom = "\u{feff}".as_bytes();
        assert_eq!(split(&[&bom[..1], &bom[1..], b"a\n"]), ["a"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(split(&[b"loss=1 \xff\n"]), ["loss=1 \u{fffd}"]);
    }

    #[test]
    fn endless_lines_are_cut() {
        let long = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        let lines = split(&[&long[..100], &long[100..], b"\nend\n"]);
        let lengths: Vec<usize> = lines.iter().map(String::len).collect();
        assert_eq!(lengths, [MAX_LINE_BYTES, MAX_LINE_BYTES, 10, 3]);
    }

    #[test]
    fn reset_forgets_the_unfinished_line() {
        let mut splitter = LineSplitter::new();
        let mut lines = Vec::new();
        let mut collect = |line: &str| lines.push(line.to_owned());
        splitter.feed(b"loss=1\nlo", &mut collect);
        splitter.reset();
        // A reset stream is a new start: its BOM goes too.
        splitter.feed("\u{feff}acc=2\n".as_bytes(), &mut collect);
        assert_eq!(lines, ["loss=1", "acc=2"]);
    }
}

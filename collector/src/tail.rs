//! Following a metrics file while a trial writes it (Katib's File collector, but live).
//!
//! The caller polls ([`FileTail::poll`]) every couple of hundred milliseconds; polling needs no
//! inotify dependency and is cheap for the one file a trial writes. Each poll reads what was
//! appended since the last one. Three things a trial's file does are handled:
//!
//! - **It does not exist yet** (the trial creates it after loading data): nothing is read until it
//!   appears.
//! - **It is truncated** (a trial reopening it with `"w"`, or `copytruncate` rotation): when the
//!   file is shorter than what was read, it is read again from the start. As with `tail -F`, a
//!   truncation followed by writes past the old length within one poll interval goes unnoticed.
//! - **It is replaced** (renamed away and created again): the old file is read to its end, then
//!   the new one from its start. The file is recognised by device and inode (Unix only).
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::lines::LineSplitter;

/// Bytes read per `read` call.
const CHUNK_BYTES: usize = 64 * 1024;

/// A file being followed; see the module docs.
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    open: Option<OpenFile>,
    splitter: LineSplitter,
    buffer: Vec<u8>,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    /// Bytes read so far (the read position).
    offset: u64,
    identity: Option<FileIdentity>,
}

/// What tells two files apart even under the same name.
type FileIdentity = (u64, u64);

#[cfg(unix)]
fn identity(metadata: &std::fs::Metadata) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<FileIdentity> {
    None
}

impl FileTail {
    /// Follows `path`, which need not exist yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            open: None,
            splitter: LineSplitter::new(),
            buffer: vec![0; CHUNK_BYTES],
        }
    }

    /// The path followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads what was written since the last poll, calling `on_line` for each complete line.
    pub fn poll(&mut self, on_line: &mut impl FnMut(&str)) -> io::Result<()> {
        // At most twice: the old file to its end, then its replacement from the start.
        for _ in 0..2 {
            if self.open.is_none() && !self.open_file()? {
                return Ok(());
            }
            let replaced = self.was_replaced();
            self.read_new_bytes(on_line)?;
            if !replaced {
                return Ok(());
            }
            // The old file is done: its unterminated last line is a line.
            self.splitter.finish(on_line);
            self.splitter.reset();
            self.open = None;
        }
        Ok(())
    }

    /// Ends following: the unterminated last line, if any, is a line too.
    pub fn finish(&mut self, on_line: &mut impl FnMut(&str)) {
        self.splitter.finish(on_line);
    }

    /// Opens the file if it exists; `false` when it does not (yet).
    fn open_file(&mut self) -> io::Result<bool> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        };
        let identity = identity(&file.metadata()?);
        self.open = Some(OpenFile {
            file,
            offset: 0,
            identity,
        });
        self.splitter.reset();
        Ok(true)
    }

    /// Whether the path now names another file than the one open. A path that is missing for a
    /// moment (between a rename and the create) is not a replacement yet.
    fn was_replaced(&self) -> bool {
        let Some(open) = &self.open else {
            return false;
        };
        match std::fs::metadata(&self.path) {
            Ok(metadata) => open.identity.is_some() && identity(&metadata) != open.identity,
            Err(_) => false,
        }
    }

    /// Reads from the read position to the end, starting over if the file was truncated.
    fn read_new_bytes(&mut self, on_line: &mut impl FnMut(&str)) -> io::Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if open.file.metadata()?.len() < open.offset {
            open.file.seek(SeekFrom::Start(0))?;
            open.offset = 0;
            self.splitter.reset();
        }
        loop {
            let read = match open.file.read(&mut self.buffer) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            open.offset += read as u64;
            self.splitter.feed(&self.buffer[..read], on_line);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::io::Write;

    use super::*;

    fn poll(tail: &mut FileTail) -> Vec<String> {
        let mut lines = Vec::new();
        tail.poll(&mut |line: &str| lines.push(line.to_owned()))
            .unwrap();
        lines
    }

    fn append(path: &Path, text: &str) {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn a_missing_file_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.log");
        let mut tail = FileTail::new(&path);
        assert!(poll(&mut tail).is_empty());
        append(&path, "loss=1\n");
        assert_eq!(poll(&mut tail), ["loss=1"]);
    }

    #[test]
    fn appended_lines_are_read_once_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.log");
        append(&path, "loss=1\nlo");
        let mut tail = FileTail::new(&path);
        assert_eq!(poll(&mut tail), ["loss=1"]);
        assert!(poll(&mut tail).is_empty());
        append(&path, "ss=2\nacc=3");
        assert_eq!(poll(&mut tail), ["loss=2"]);
        let mut rest = Vec::new();
        tail.finish(&mut |line: &str| rest.push(line.to_owned()));
        assert_eq!(rest, ["acc=3"]);
    }

    #[test]
    fn a_truncated_file_is_read_again_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.log");
        append(&path, "loss=1\nloss=2\nhalf");
        let mut tail = FileTail::new(&path);
        assert_eq!(poll(&mut tail), ["loss=1", "loss=2"]);
        // Reopened with "w": shorter than what was read. The unfinished "half" is forgotten.
        fs::write(&path, "loss=9\n").unwrap();
        assert_eq!(poll(&mut tail), ["loss=9"]);
        append(&path, "loss=8\n");
        assert_eq!(poll(&mut tail), ["loss=8"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_is_finished_then_followed_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.log");
        append(&path, "loss=1\n");
        let mut tail = FileTail::new(&path);
        assert_eq!(poll(&mut tail), ["loss=1"]);
        // Written to the old file after our last read, then rotated away.
        append(&path, "loss=2\nlast");
        fs::rename(&path, dir.path().join("metrics.log.1")).unwrap();
        // Between the rename and the new file: nothing is lost or repeated.
        assert_eq!(poll(&mut tail), ["loss=2"]);
        append(&path, "loss=3\n");
        assert_eq!(poll(&mut tail), ["last", "loss=3"]);
        assert!(poll(&mut tail).is_empty());
    }
}

//! The queue of undelivered observations: memory up to a bound, then a spool file on disk.
//!
//! A trial can print metrics faster than they are delivered (the server is down, or restarting),
//! and the collector must neither grow without bound in the trial's memory nor drop points. So the
//! queue keeps up to `memory_limit` points in memory and appends the rest to a JSON-lines spool
//! file, one [`Observation`] a line.
//!
//! Order is kept (the server overwrites a (metric, step) that is sent twice, so the last value
//! printed must also be the last delivered). The queue is three segments, oldest first:
//!
//! 1. `head`, in memory: points that arrived while there was room;
//! 2. the spool file: once memory is full, every newer point goes here until the file is drained;
//! 3. `tail`, in memory: points that could not be written to the spool (disk full), kept past the
//!    bound rather than dropped; once the file is drained they become the head.
//!
//! A batch is read from one segment and stays there until [`PointQueue::ack`], which the shipper
//! calls only after the server accepted the batch: a point leaves memory or disk only once
//! delivered. Delivered spool lines are skipped by an offset and the file is truncated when it
//! is drained, so the spool costs one append per spilled batch and no rewriting. When the
//! collector gives up, [`PointQueue::persist`] writes every undelivered point, compacted and in
//! order, into the spool file and syncs it, so that the file is the complete account.
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::Observation;

/// Where a batch came from, so that [`PointQueue::ack`] removes it from the right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Head,
    /// Spool lines up to byte `end`; `lines` of them (unreadable ones included).
    Spool {
        end: u64,
        lines: usize,
    },
    Tail,
}

/// The oldest undelivered points, to send as one request.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// The points, oldest first. May be empty when only unreadable spool lines were found.
    pub(crate) points: Vec<Observation>,
    segment: Segment,
}

/// The spool file while it holds points.
#[derive(Debug)]
struct SpoolFile {
    /// Opened for reading and appending: appends go to the end whatever the read position.
    file: File,
    /// Bytes at the start of the file already delivered.
    delivered_bytes: u64,
    /// The file's length: the end of the last complete line.
    len: u64,
    /// Undelivered lines after `delivered_bytes`.
    pending: usize,
}

/// Undelivered observations, in order; see the module docs.
#[derive(Debug)]
pub(crate) struct PointQueue {
    head: VecDeque<Observation>,
    memory_limit: usize,
    tail: VecDeque<Observation>,
    dir: PathBuf,
    /// Chosen when the spool file is first created; kept, so that the file a message named once
    /// is the one that is written again.
    path: Option<PathBuf>,
    spool: Option<SpoolFile>,
    /// Whether this queue created `dir` (and so may remove it when it is empty again).
    created_dir: bool,
}

impl PointQueue {
    /// An empty queue keeping up to `memory_limit` points in memory and spilling into `dir`,
    /// which is created only when needed.
    pub(crate) fn new(memory_limit: usize, dir: PathBuf) -> Self {
        Self {
            head: VecDeque::new(),
            memory_limit,
            tail: VecDeque::new(),
            dir,
            path: None,
            spool: None,
            created_dir: false,
        }
    }

    /// Undelivered points, wherever they are.
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.spool_pending() + self.tail.len()
    }

    /// Whether every point was delivered.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The directory the spool file goes in.
    pub(crate) fn spool_dir(&self) -> &Path {
        &self.dir
    }

    /// The spool file, once one was created.
    #[cfg(test)]
    pub(crate) fn spool_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn spool_pending(&self) -> usize {
        self.spool.as_ref().map_or(0, |spool| spool.pending)
    }

    /// Appends `points`. An error means the spool file could not be written: the points are then
    /// kept in memory past the bound, so nothing is lost, and the error is for a warning.
    pub(crate) fn push_all(&mut self, points: Vec<Observation>) -> io::Result<()> {
        let mut points = points.into_iter();
        if self.tail.is_empty() && self.spool_pending() == 0 {
            let room = self.memory_limit.saturating_sub(self.head.len());
            self.head.extend(points.by_ref().take(room));
        }
        let rest: Vec<Observation> = points.collect();
        if rest.is_empty() {
            return Ok(());
        }
        if !self.tail.is_empty() {
            self.tail.extend(rest);
            return Ok(());
        }
        match self.append_to_spool(&rest) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.tail.extend(rest);
                Err(error)
            }
        }
    }

    /// Writes `points` at the end of the spool file in one write; on failure the file is cut back
    /// to its last complete line.
    fn append_to_spool(&mut self, points: &[Observation]) -> io::Result<()> {
        // About 90 bytes per serialised point with a short metric name.
        let mut bytes = Vec::with_capacity(points.len() * 96);
        for point in points {
            serde_json::to_writer(&mut bytes, point)?;
            bytes.push(b'\n');
        }
        if self.spool.is_none() {
            self.spool = Some(self.open_spool()?);
        }
        let Some(spool) = self.spool.as_mut() else {
            return Ok(());
        };
        let written = (&spool.file).write_all(&bytes);
        if let Err(error) = written {
            // Best effort: a torn line must not glue itself to the next one.
            let _ = spool.file.set_len(spool.len);
            return Err(error);
        }
        spool.len += bytes.len() as u64;
        spool.pending += points.len();
        Ok(())
    }

    /// Opens the spool file, creating the directory and choosing the file's name on first use.
    fn open_spool(&mut self) -> io::Result<SpoolFile> {
        let path = match &self.path {
            Some(path) => path.clone(),
            None => {
                if !self.dir.exists() {
                    fs::create_dir_all(&self.dir)?;
                    self.created_dir = true;
                }
                let path = unused_spool_path(&self.dir)?;
                self.path = Some(path.clone());
                path
            }
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        file.set_len(0)?;
        Ok(SpoolFile {
            file,
            delivered_bytes: 0,
            len: 0,
            pending: 0,
        })
    }

    /// Up to `max` of the oldest points, all from one segment. Nothing is removed.
    pub(crate) fn peek(&mut self, max: usize) -> io::Result<Batch> {
        if !self.head.is_empty() {
            let points = self.head.iter().take(max).cloned().collect();
            return Ok(Batch {
                points,
                segment: Segment::Head,
            });
        }
        if let Some(spool) = self.spool.as_mut().filter(|spool| spool.pending > 0) {
            return read_spool(spool, max);
        }
        let points = self.tail.iter().take(max).cloned().collect();
        Ok(Batch {
            points,
            segment: Segment::Tail,
        })
    }

    /// Removes `batch`, which the server accepted. Batches must be acknowledged in the order they
    /// were peeked, with no push to the same segment's front in between (only the sender peeks).
    pub(crate) fn ack(&mut self, batch: &Batch) {
        match batch.segment {
            Segment::Head => drop(self.head.drain(..batch.points.len().min(self.head.len()))),
            Segment::Tail => drop(self.tail.drain(..batch.points.len().min(self.tail.len()))),
            Segment::Spool { end, lines } => {
                let Some(spool) = self.spool.as_mut() else {
                    return;
                };
                spool.delivered_bytes = end;
                spool.pending = spool.pending.saturating_sub(lines);
                if spool.pending == 0 {
                    // Drained: start the file over, and let the points that could not be
                    // spilled become the head (the head is empty while the spool is read).
                    if spool.file.set_len(0).is_ok() {
                        spool.delivered_bytes = 0;
                        spool.len = 0;
                    }
                    self.head.append(&mut self.tail);
                }
            }
        }
    }

    /// Writes every undelivered point, in order, into the spool file and syncs it, so that the
    /// file alone holds them. Returns how many points and where; `None` when there were none (the
    /// spool file, and the directory if this queue made it, are then removed).
    pub(crate) fn persist(&mut self) -> io::Result<Option<(usize, PathBuf)>> {
        let total = self.len();
        if total == 0 {
            self.remove_spool();
            return Ok(None);
        }
        let everything_on_disk = self.head.is_empty()
            && self.tail.is_empty()
            && self
                .spool
                .as_ref()
                .is_some_and(|spool| spool.delivered_bytes == 0);
        if !everything_on_disk {
            let head: Vec<Observation> = self.head.drain(..).collect();
            let tail: Vec<Observation> = self.tail.drain(..).collect();
            if let Err(error) = self.rewrite_spool(&head, &tail) {
                // Keep them in memory, in order, for whatever the caller does next.
                self.head.extend(head);
                self.tail = tail.into();
                return Err(error);
            }
        }
        let Some(spool) = &self.spool else {
            return Ok(None);
        };
        spool.file.sync_all()?;
        Ok(self.path.clone().map(|path| (total, path)))
    }

    /// Replaces the spool file with `head`, its undelivered lines and `tail`, atomically.
    fn rewrite_spool(&mut self, head: &[Observation], tail: &[Observation]) -> io::Result<()> {
        if self.spool.is_none() {
            self.spool = Some(self.open_spool()?);
        }
        let (Some(spool), Some(path)) = (self.spool.as_mut(), self.path.clone()) else {
            return Ok(());
        };
        let temporary = path.with_extension("jsonl.tmp");
        let mut out = io::BufWriter::new(File::create(&temporary)?);
        for point in head {
            serde_json::to_writer(&mut out, point)?;
            out.write_all(b"\n")?;
        }
        (&spool.file).seek(SeekFrom::Start(spool.delivered_bytes))?;
        let undelivered = spool.len - spool.delivered_bytes;
        let copied = io::copy(&mut (&spool.file).take(undelivered), &mut out)?;
        for point in tail {
            serde_json::to_writer(&mut out, point)?;
            out.write_all(b"\n")?;
        }
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&temporary, &path)?;
        let file = OpenOptions::new().read(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        debug_assert_eq!(copied, undelivered);
        *spool = SpoolFile {
            file,
            delivered_bytes: 0,
            len,
            pending: head.len() + spool.pending + tail.len(),
        };
        Ok(())
    }

    /// Removes the spool file and, if this queue created it and it is empty, the directory.
    fn remove_spool(&mut self) {
        self.spool = None;
        if let Some(path) = self.path.take() {
            let _ = fs::remove_file(path);
        }
        if self.created_dir {
            // Fails, as it should, when something else was put there.
            let _ = fs::remove_dir(&self.dir);
            self.created_dir = false;
        }
    }
}

/// Reads up to `max` lines of `spool` after its delivered part.
fn read_spool(spool: &mut SpoolFile, max: usize) -> io::Result<Batch> {
    (&spool.file).seek(SeekFrom::Start(spool.delivered_bytes))?;
    let undelivered = spool.len - spool.delivered_bytes;
    let mut reader = BufReader::new((&spool.file).take(undelivered));
    let mut points = Vec::new();
    let mut end = spool.delivered_bytes;
    let mut lines = 0;
    let mut line = String::new();
    while lines < max.min(spool.pending) {
        line.clear();
        let read = reader.read_line(&mut line)?;
        if read == 0 {
            break;
        }
        end += read as u64;
        lines += 1;
        // A line we wrote ourselves; one that does not parse (the file was edited) is skipped
        // rather than blocking everything behind it.
        if let Ok(point) = serde_json::from_str::<Observation>(&line) {
            points.push(point);
        }
    }
    if lines == 0 {
        // The file is shorter than the count says (it was cut behind our back): what is counted
        // cannot be read, so stop counting it.
        lines = spool.pending;
        end = spool.len;
    }
    Ok(Batch {
        points,
        segment: Segment::Spool { end, lines },
    })
}

/// `dir/points-<unix ms>-<pid>.jsonl`, with a counter if that exists: a restarted collector (pid 1
/// in every container) must not overwrite the points an earlier run left behind.
fn unused_spool_path(dir: &Path) -> io::Result<PathBuf> {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    let stem = format!("points-{millis}-{}", std::process::id());
    for attempt in 0u32.. {
        let name = if attempt == 0 {
            format!("{stem}.jsonl")
        } else {
            format!("{stem}-{attempt}.jsonl")
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => return Ok(path),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::other("no unused spool file name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: i64) -> Observation {
        Observation {
            metric_name: "loss".into(),
            value: step as f64 / 10.0,
            step,
            timestamp: "2030-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    fn points(steps: std::ops::Range<i64>) -> Vec<Observation> {
        steps.map(point).collect()
    }

    fn steps(batch: &Batch) -> Vec<i64> {
        batch.points.iter().map(|p| p.step).collect()
    }

    /// Drains the queue in batches of `max`, acknowledging each; returns the steps in order.
    fn drain(queue: &mut PointQueue, max: usize) -> Vec<i64> {
        let mut delivered = Vec::new();
        while !queue.is_empty() {
            let batch = queue.peek(max).unwrap();
            delivered.extend(steps(&batch));
            queue.ack(&batch);
        }
        delivered
    }

    #[test]
    fn memory_only_below_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let mut queue = PointQueue::new(10, spool_dir.clone());
        queue.push_all(points(1..8)).unwrap();
        assert_eq!(queue.len(), 7);
        assert_eq!(queue.spool_path(), None);
        assert!(!spool_dir.exists(), "no directory until something spills");
        let batch = queue.peek(3).unwrap();
        assert_eq!(steps(&batch), [1, 2, 3]);
        // Peeking again without an ack gives the same batch: nothing leaves before delivery.
        assert_eq!(steps(&queue.peek(3).unwrap()), [1, 2, 3]);
        queue.ack(&batch);
        assert_eq!(drain(&mut queue, 100), [4, 5, 6, 7]);
    }

    #[test]
    fn past_the_bound_points_spill_and_order_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = PointQueue::new(3, dir.path().join("spool"));
        queue.push_all(points(1..6)).unwrap();
        let path = queue.spool_path().unwrap().to_owned();
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);
        // While the spool holds points, new ones go behind them even when memory has room.
        let first = queue.peek(10).unwrap();
        assert_eq!(steps(&first), [1, 2, 3]);
        queue.ack(&first);
        queue.push_all(points(6..8)).unwrap();
        assert_eq!(queue.len(), 4);
        assert_eq!(drain(&mut queue, 3), [4, 5, 6, 7]);
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            0,
            "a drained spool is cut"
        );
        // Drained: memory is used again.
        queue.push_all(points(8..10)).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(drain(&mut queue, 10), [8, 9]);
    }

    #[test]
    fn a_zero_bound_spools_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = PointQueue::new(0, dir.path().to_owned());
        queue.push_all(points(1..1001)).unwrap();
        assert_eq!(queue.len(), 1000);
        let delivered = drain(&mut queue, 7);
        assert_eq!(delivered, (1..1001).collect::<Vec<_>>());
    }

    #[test]
    fn spool_batches_stay_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = PointQueue::new(0, dir.path().to_owned());
        queue.push_all(points(1..5)).unwrap();
        let batch = queue.peek(2).unwrap();
        assert_eq!(steps(&batch), [1, 2]);
        queue.push_all(points(5..6)).unwrap();
        assert_eq!(
            steps(&queue.peek(2).unwrap()),
            [1, 2],
            "a retry sends the same"
        );
        queue.ack(&batch);
        assert_eq!(queue.len(), 3);
        assert_eq!(drain(&mut queue, 2), [3, 4, 5]);
    }

    #[test]
    fn an_unwritable_spool_keeps_points_in_memory_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the spool directory should be: the spool cannot be created.
        let blocked = dir.path().join("blocked");
        fs::write(&blocked, "").unwrap();
        let mut queue = PointQueue::new(2, blocked);
        assert!(queue.push_all(points(1..4)).is_err());
        assert!(
            queue.push_all(points(4..5)).is_ok(),
            "goes behind, in memory"
        );
        assert_eq!(queue.len(), 4);
        assert_eq!(drain(&mut queue, 10), [1, 2, 3, 4]);
    }

    #[test]
    fn persist_writes_everything_undelivered_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = PointQueue::new(3, dir.path().join("spool"));
        queue.push_all(points(1..9)).unwrap();
        // Deliver part of the head and part of the spool... only the head can go first.
        let batch = queue.peek(2).unwrap();
        queue.ack(&batch);
        let (count, path) = queue.persist().unwrap().unwrap();
        assert_eq!(count, 6);
        let on_disk: Vec<i64> = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<Observation>(line).unwrap().step)
            .collect();
        assert_eq!(on_disk, [3, 4, 5, 6, 7, 8]);
        assert!(!path.with_extension("jsonl.tmp").exists());
        // Later points go behind them, and persisting again keeps the same file.
        queue.push_all(points(9..10)).unwrap();
        let (count, again) = queue.persist().unwrap().unwrap();
        assert_eq!((count, &again), (7, &path));
        // And the queue still delivers from it.
        assert_eq!(drain(&mut queue, 4), [3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn persist_of_memory_only_points_creates_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = PointQueue::new(100, dir.path().join("spool"));
        queue.push_all(points(1..4)).unwrap();
        let (count, path) = queue.persist().unwrap().unwrap();
        assert_eq!(count, 3);
        assert_eq!(fs::read_to_string(path).unwrap().lines().count(), 3);
    }

    #[test]
    fn persist_of_nothing_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let mut queue = PointQueue::new(0, spool_dir.clone());
        queue.push_all(points(1..3)).unwrap();
        drain(&mut queue, 10);
        assert!(spool_dir.exists());
        assert_eq!(queue.persist().unwrap(), None);
        assert!(!spool_dir.exists(), "the directory it made is gone");
        // A directory that was there before stays.
        let mut queue = PointQueue::new(0, dir.path().to_owned());
        queue.push_all(points(1..3)).unwrap();
        drain(&mut queue, 10);
        assert_eq!(queue.persist().unwrap(), None);
        assert!(dir.path().exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn spool_files_never_overwrite_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let first = unused_spool_path(dir.path()).unwrap();
        let second = unused_spool_path(dir.path()).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn unreadable_spool_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = PointQueue::new(0, dir.path().to_owned());
        queue.push_all(points(1..3)).unwrap();
        let path = queue.spool_path().unwrap().to_owned();
        // Someone edits the first line into garbage of the same length.
        let text = fs::read_to_string(&path).unwrap();
        let first_len = text.lines().next().unwrap().len();
        let edited = format!("{}{}", "x".repeat(first_len), &text[first_len..]);
        fs::write(&path, edited).unwrap();
        assert_eq!(drain(&mut queue, 10), [2]);
    }
}

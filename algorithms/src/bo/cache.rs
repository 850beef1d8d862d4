//! The engine's in-memory cache of posterior factors.
//!
//! Consecutive calls of one experiment mostly see the same training rows plus a few new ones, with
//! the same hyperparameters (refits are scheduled). The cache keeps the Cholesky factor of the
//! rows it saw, keyed by the hyperparameters' exact bits; a call reuses the factor of the longest
//! common *prefix* of rows and appends the rest, `O(n²)` per new row instead of `O(n³)`. A trial
//! that finishes out of order breaks the prefix only from its position on.
//!
//! Correctness never depends on the cache: [`GrowingCholesky`] computes row `i` from rows `0..i`
//! only, so a reused prefix is bit for bit what a fresh factorisation would compute; a miss,
//! a poisoned lock or an eviction only costs time. A few entries are kept so that one engine
//! serving several experiments does not thrash.

use std::sync::Mutex;

use super::linalg::GrowingCholesky;

/// Entries kept (least recently used evicted). Each holds at most `MAX_MODEL_POINTS²/2` doubles
/// (9 MB at 1,500 points).
const CACHE_ENTRIES: usize = 4;

/// A factor and what it factors.
#[derive(Debug)]
struct Entry {
    /// The hyperparameters' bits and the input dimension.
    key: Vec<u64>,
    /// The rows (row-major encodings) the factor is of.
    rows: Vec<f64>,
    /// The factor.
    chol: GrowingCholesky,
}

/// Posterior factors of recent calls.
#[derive(Debug, Default)]
pub(crate) struct FactorCache {
    entries: Mutex<Vec<Entry>>,
}

impl FactorCache {
    /// The factor of the longest cached prefix of `rows` under `key` (empty on a miss). The
    /// entry is taken out while in use; [`FactorCache::put`] returns it.
    pub(crate) fn take(&self, key: &[u64], rows: &[f64], dims: usize) -> GrowingCholesky {
        let Ok(mut entries) = self.entries.lock() else {
            return GrowingCholesky::new();
        };
        let mut best: Option<(usize, usize)> = None;
        for (index, entry) in entries.iter().enumerate() {
            if entry.key != key {
                continue;
            }
            let common = common_rows(&entry.rows, rows, dims).min(entry.chol.len());
            if best.is_none_or(|(_, c)| common > c) {
                best = Some((index, common));
            }
        }
        match best {
            Some((index, common)) if common > 0 => {
                let mut entry = entries.remove(index);
                entry.chol.truncate(common);
                entry.chol
            }
            _ => GrowingCholesky::new(),
        }
    }

    /// Stores the factor of `rows` under `key`, as the most recent entry.
    pub(crate) fn put(&self, key: Vec<u64>, rows: Vec<f64>, chol: GrowingCholesky) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.insert(0, Entry { key, rows, chol });
        entries.truncate(CACHE_ENTRIES);
    }
}

/// Number of leading rows (of `dims` values) that are bitwise equal.
fn common_rows(a: &[f64], b: &[f64], dims: usize) -> usize {
    if dims == 0 {
        return 0;
    }
    a.chunks_exact(dims)
        .zip(b.chunks_exact(dims))
        .take_while(|(x, y)| x.iter().zip(*y).all(|(p, q)| p.to_bits() == q.to_bits()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_longest_prefix_and_evicts() {
        let cache = FactorCache::default();
        let mut chol = GrowingCholesky::new();
        chol.push(&[], 2.0);
        chol.push(&[0.5], 2.0);
        chol.push(&[0.5, 0.5], 2.0);
        cache.put(vec![1], vec![0.0, 1.0, 2.0], chol);
        // Same key, rows diverge at the third: two rows reused.
        assert_eq!(cache.take(&[1], &[0.0, 1.0, 9.0, 3.0], 1).len(), 2);
        // Taken out: a second take misses.
        assert_eq!(cache.take(&[1], &[0.0, 1.0], 1).len(), 0);
        for key in 0..10u64 {
            let mut chol = GrowingCholesky::new();
            chol.push(&[], 1.0);
            cache.put(vec![key], vec![0.0], chol);
        }
        assert_eq!(cache.take(&[9], &[0.0], 1).len(), 1);
        assert_eq!(cache.take(&[0], &[0.0], 1).len(), 0);
    }
}

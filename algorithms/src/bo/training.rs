//! The training set: which finished trials the model sees, encoded and standardised.
//!
//! * Trials without a finite loss (failed, NaN, ±∞) are left out of the model; their points stay
//!   taken (the caller's [`TakenPoints`](crate::taken::TakenPoints) holds the whole history).
//! * Beyond [`MAX_MODEL_POINTS`] the model keeps a subset: the best half by loss, the most recent
//!   quarter, and an even spread of the rest, in history order. Exact GP inference is `O(n²)`
//!   memory and `O(n³)` time; 1,500 points keep a full refactorisation near 0.2 s and a
//!   suggestion well under the 1 s target, and in tuning the best points and the latest ones are
//!   what the acquisition needs to be right about.
//! * The hyperparameter fit, `O(n³)` per likelihood evaluation, uses at most [`MAX_FIT_POINTS`] of
//!   them chosen the same way: hyperparameters are a handful of numbers that a few hundred points
//!   determine as well as a thousand.
//! * Losses are standardised (zero mean, unit variance) so that the priors on the signal and
//!   noise variances mean the same thing for every objective. Constant losses get unit scale.

/// The most points the GP conditions on (see the module docs).
pub(crate) const MAX_MODEL_POINTS: usize = 1_500;

/// The most points the hyperparameter fit uses (see the module docs).
pub(crate) const MAX_FIT_POINTS: usize = 300;

/// The model's training set.
#[derive(Debug, Clone)]
pub(crate) struct Training {
    /// Row-major encodings, `y.len()` rows of `dims` columns, in history order.
    pub(crate) x: Vec<f64>,
    /// Standardised losses.
    pub(crate) y: Vec<f64>,
    /// Input dimensions.
    pub(crate) dims: usize,
    /// Number of usable (finite-loss) trials in the whole history, before any subset.
    pub(crate) usable: usize,
}

impl Training {
    /// Builds the training set from `(encoding, loss)` pairs in history order (non-finite losses
    /// already dropped).
    pub(crate) fn new(rows: Vec<(Vec<f64>, f64)>, dims: usize) -> Training {
        let usable = rows.len();
        let losses: Vec<f64> = rows.iter().map(|(_, y)| *y).collect();
        let keep = select(&losses, MAX_MODEL_POINTS);
        let mut x = Vec::with_capacity(keep.len() * dims);
        let mut raw = Vec::with_capacity(keep.len());
        for &i in &keep {
            let (features, loss) = &rows[i];
            x.extend_from_slice(features);
            raw.push(*loss);
        }
        Training {
            x,
            y: standardise(&raw),
            dims,
            usable,
        }
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.y.len()
    }

    /// Row `i`.
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.dims..(i + 1) * self.dims]
    }

    /// The lowest standardised loss (the incumbent of EI and PI).
    pub(crate) fn best(&self) -> f64 {
        self.y.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The row with the lowest loss (the first of ties).
    pub(crate) fn best_rows(&self, count: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by(|&a, &b| self.y[a].total_cmp(&self.y[b]).then(a.cmp(&b)));
        order.truncate(count);
        order
    }

    /// The subset the hyperparameter fit uses: `(x, y)`, at most [`MAX_FIT_POINTS`] rows.
    pub(crate) fn fit_subset(&self) -> (Vec<f64>, Vec<f64>) {
        let keep = select(&self.y, MAX_FIT_POINTS);
        let mut x = Vec::with_capacity(keep.len() * self.dims);
        let mut y = Vec::with_capacity(keep.len());
        for &i in &keep {
            x.extend_from_slice(self.row(i));
            y.push(self.y[i]);
        }
        (x, y)
    }
}

/// Indices (ascending) of at most `cap` of `losses`: all when they fit, else the best half, the
/// most recent quarter and an even spread over the rest.
pub(crate) fn select(losses: &[f64], cap: usize) -> Vec<usize> {
    let n = losses.len();
    if n <= cap {
        return (0..n).collect();
    }
    let mut chosen = vec![false; n];
    let mut by_loss: Vec<usize> = (0..n).collect();
    by_loss.sort_by(|&a, &b| losses[a].total_cmp(&losses[b]).then(a.cmp(&b)));
    for &i in by_loss.iter().take(cap / 2) {
        chosen[i] = true;
    }
    let mut recent = cap / 4;
    for i in (0..n).rev() {
        if recent == 0 {
            break;
        }
        if !chosen[i] {
            chosen[i] = true;
            recent -= 1;
        }
    }
    let taken = chosen.iter().filter(|&&c| c).count();
    let rest: Vec<usize> = (0..n).filter(|&i| !chosen[i]).collect();
    let want = cap.saturating_sub(taken).min(rest.len());
    for k in 0..want {
        // Evenly spaced over the rest, first and last included when want > 1.
        let at = if want == 1 {
            0
        } else {
            k * (rest.len() - 1) / (want - 1)
        };
        chosen[rest[at]] = true;
    }
    (0..n).filter(|&i| chosen[i]).collect()
}

/// `(y − mean) / sd`; unit scale when the losses are constant, ranks when the moments overflow.
pub(crate) fn standardise(y: &[f64]) -> Vec<f64> {
    let n = y.len() as f64;
    if y.is_empty() {
        return Vec::new();
    }
    let mean = y.iter().sum::<f64>() / n;
    let var = y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    if !mean.is_finite() || !sd.is_finite() {
        // Losses near ±f64::MAX: fall back to ranks, which keep the order and nothing else.
        let mut order: Vec<usize> = (0..y.len()).collect();
        order.sort_by(|&a, &b| y[a].total_cmp(&y[b]));
        let mut ranks = vec![0.0; y.len()];
        for (rank, &i) in order.iter().enumerate() {
            ranks[i] = rank as f64;
        }
        return standardise(&ranks);
    }
    let scale = if sd > f64::EPSILON * mean.abs().max(f64::MIN_POSITIVE) {
        sd
    } else {
        1.0
    };
    y.iter().map(|v| (v - mean) / scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_keep_the_best_the_recent_and_a_spread() {
        let losses: Vec<f64> = (0..100).map(|i| ((i * 37) % 100) as f64).collect();
        let keep = select(&losses, 20);
        assert_eq!(keep.len(), 20);
        assert!(keep.windows(2).all(|w| w[0] < w[1]));
        // The 10 best losses (0..10) are all in.
        let kept_losses: Vec<f64> = keep.iter().map(|&i| losses[i]).collect();
        for best in 0..10 {
            assert!(kept_losses.contains(&(best as f64)));
        }
        // The last point is in.
        assert!(keep.contains(&99));
        assert_eq!(select(&losses[..5], 20), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn standardisation_is_safe() {
        let z = standardise(&[1.0, 2.0, 3.0]);
        assert!((z.iter().sum::<f64>()).abs() < 1e-15);
        assert_eq!(standardise(&[5.0, 5.0]), vec![0.0, 0.0]);
        assert_eq!(standardise(&[7.0]), vec![0.0]);
        let huge = standardise(&[f64::MAX, -f64::MAX, 0.0]);
        assert!(huge.iter().all(|v| v.is_finite()));
        assert!(huge[0] > huge[2] && huge[2] > huge[1]);
    }
}

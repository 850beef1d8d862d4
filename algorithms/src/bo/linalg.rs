//! Dense linear algebra for the GP: a Cholesky factor that grows by rows, and faer for the bulk work.
//!
//! # Why two Cholesky factorisations
//!
//! The hyperparameter fit factorises a fresh covariance matrix at every likelihood evaluation and
//! needs its inverse; there faer's blocked, SIMD factorisation and inverse are used (sequentially:
//! [`Par::Seq`], see `CRATES.md`).
//!
//! The posterior factor is different: between refits the hyperparameters stay fixed and the
//! training set only grows (new trials, then the pending and already chosen points of a batch as
//! fantasies), so the factor is extended by **appending rows**, `O(n²)` per row instead of
//! `O(n³)` for a refactorisation. [`GrowingCholesky`] computes row `i` of `L` from rows `0..i`
//! only (the Cholesky–Banachiewicz order), and a full factorisation is nothing but `n` appends.
//! So a factor extended from a cached prefix is *bit for bit* the factor computed from scratch:
//! the engine's in-memory cache can never change a suggestion, and a restarted service answers
//! exactly as one that kept running. The inner products use a fixed 8-way split (no FMA
//! contraction, which Rust never does implicitly), so the result does not depend on the CPU.
//!
//! Solves against the posterior factor for many candidates at once go through faer's blocked
//! triangular solve on a dense copy of `L`.

use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Mat, MatMut, MatRef, Par};

/// A pivot below this fraction of its diagonal entry is clamped up to it: the matrix is then not
/// numerically positive definite (duplicated points with a noise term at its floor), and a
/// slightly perturbed factor is better than a failed suggestion. With the noise floor of the GP
/// (1e-6 of the signal variance) this never triggers on real data.
const MIN_RELATIVE_PIVOT: f64 = 1e-12;

/// A lower-triangular Cholesky factor `L` stored row by row (row `i` holds `L[i][0..=i]`), so that
/// rows can be appended and the last rows dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct GrowingCholesky {
    /// Rows of `L`, packed: row `i` starts at `i (i + 1) / 2`.
    packed: Vec<f64>,
    /// Number of rows.
    n: usize,
}

impl GrowingCholesky {
    /// An empty factor (of a 0 × 0 matrix).
    pub(crate) fn new() -> Self {
        GrowingCholesky::default()
    }

    /// Number of rows (the size of the factored matrix).
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Row `i` of `L`, `L[i][0..=i]`.
    pub(crate) fn row(&self, i: usize) -> &[f64] {
        let start = i * (i + 1) / 2;
        &self.packed[start..start + i + 1]
    }

    /// Extends the factor of `A` to the factor of `[[A, k], [kᵀ, diag]]`, where `k` holds the new
    /// point's covariances with the `len()` points already in and `diag` its own variance.
    /// Returns `false` when a pivot had to be clamped (the extended matrix was not numerically
    /// positive definite).
    pub(crate) fn push(&mut self, k: &[f64], diag: f64) -> bool {
        let n = self.n;
        let start = self.packed.len();
        self.packed.reserve(n + 1);
        for j in 0..n {
            let row_j = self.row(j);
            let s = k.get(j).copied().unwrap_or(0.0) - dot(&row_j[..j], &self.packed[start..]);
            let value = s / row_j[j];
            self.packed.push(value);
        }
        let d = diag - dot(&self.packed[start..], &self.packed[start..]);
        let floor = MIN_RELATIVE_PIVOT * diag.abs().max(f64::MIN_POSITIVE);
        let healthy = d > floor && d.is_finite();
        self.packed
            .push(if healthy { d.sqrt() } else { floor.sqrt() });
        self.n += 1;
        healthy
    }

    /// Keeps the first `n` rows (the factor of the leading `n × n` block).
    pub(crate) fn truncate(&mut self, n: usize) {
        if n < self.n {
            self.n = n;
            self.packed.truncate(n * (n + 1) / 2);
        }
    }

    /// Solves `L x = b` in place (`b.len() == len()`).
    pub(crate) fn solve_lower(&self, b: &mut [f64]) {
        for i in 0..self.n.min(b.len()) {
            let row = self.row(i);
            let s = b[i] - dot(&row[..i], &b[..i]);
            b[i] = s / row[i];
        }
    }

    /// Solves `Lᵀ x = b` in place (`b.len() == len()`).
    pub(crate) fn solve_upper(&self, b: &mut [f64]) {
        let n = self.n.min(b.len());
        for i in (0..n).rev() {
            let row = self.row(i);
            let xi = b[i] / row[i];
            b[i] = xi;
            for (bj, lij) in b[..i].iter_mut().zip(&row[..i]) {
                *bj -= lij * xi;
            }
        }
    }

    /// `Σ log L_ii`, half the log-determinant of the factored matrix.
    pub(crate) fn half_log_det(&self) -> f64 {
        (0..self.n).map(|i| self.row(i)[i].ln()).sum()
    }

    /// `L` as a dense faer matrix (the strict upper triangle zero).
    pub(crate) fn to_dense(&self) -> Mat<f64> {
        Mat::from_fn(
            self.n,
            self.n,
            |i, j| {
                if j <= i { self.row(i)[j] } else { 0.0 }
            },
        )
    }
}

/// Solves `L X = B` in place for a dense lower-triangular `L` and many right-hand sides.
pub(crate) fn solve_lower_many(l: MatRef<'_, f64>, b: MatMut<'_, f64>) {
    if l.nrows() == b.nrows() && l.nrows() > 0 {
        solve_lower_triangular_in_place(l, b, Par::Seq);
    }
}

/// `Σ a_i b_i` over the common length, summed in a fixed order (8 interleaved partial sums, then
/// a fixed tree), so the result is reproducible and the loop vectorises.
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; LANES];
    let mut a_chunks = a.chunks_exact(LANES);
    let mut b_chunks = b.chunks_exact(LANES);
    for (ca, cb) in (&mut a_chunks).zip(&mut b_chunks) {
        for lane in 0..LANES {
            acc[lane] += ca[lane] * cb[lane];
        }
    }
    let tail: f64 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small symmetric positive definite matrix, row-major.
    fn spd(n: usize) -> Vec<f64> {
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let d = (i as f64 - j as f64).abs();
                a[i * n + j] = (-0.3 * d).exp() + if i == j { 0.5 } else { 0.0 };
            }
        }
        a
    }

    /// The factor of the leading `rows × rows` block of the `n × n` matrix `a`.
    fn factor(a: &[f64], n: usize, rows: usize) -> GrowingCholesky {
        let mut l = GrowingCholesky::new();
        for i in 0..rows {
            assert!(l.push(&a[i * n..i * n + i], a[i * n + i]));
        }
        l
    }

    #[test]
    fn factor_reproduces_the_matrix_and_solves() {
        let n = 13;
        let a = spd(n);
        let l = factor(&a, n, n);
        for i in 0..n {
            for j in 0..=i {
                let v = dot(&l.row(i)[..=j], &l.row(j)[..=j]);
                assert!((v - a[i * n + j]).abs() < 1e-12, "{i} {j}");
            }
        }
        let b: Vec<f64> = (0..n).map(|i| (i as f64).sin()).collect();
        let mut x = b.clone();
        l.solve_lower(&mut x);
        l.solve_upper(&mut x);
        for i in 0..n {
            let ax: f64 = (0..n).map(|j| a[i * n + j] * x[j]).sum();
            assert!((ax - b[i]).abs() < 1e-10);
        }
        // The dense copy agrees with faer's many-right-hand-side solve.
        let dense = l.to_dense();
        let mut many = Mat::from_fn(n, 2, |i, _| b[i]);
        solve_lower_many(dense.as_ref(), many.as_mut());
        let mut one = b.clone();
        l.solve_lower(&mut one);
        for i in 0..n {
            assert!((many[(i, 1)] - one[i]).abs() < 1e-12);
        }
    }

    #[test]
    fn appending_rows_is_bitwise_a_refactorisation() {
        let n = 20;
        let a = spd(n);
        let full = factor(&a, n, n);
        let mut grown = factor(&a, n, 12);
        grown.truncate(7);
        for i in 7..n {
            grown.push(&a[i * n..i * n + i], a[i * n + i]);
        }
        assert_eq!(full.packed, grown.packed);
    }

    #[test]
    fn a_singular_extension_is_clamped_not_nan() {
        let mut l = GrowingCholesky::new();
        assert!(l.push(&[], 1.0));
        // The same point again without noise: pivot 0.
        assert!(!l.push(&[1.0], 1.0));
        assert!(l.row(1).iter().all(|v| v.is_finite()));
        assert!(l.half_log_det().is_finite());
    }
}

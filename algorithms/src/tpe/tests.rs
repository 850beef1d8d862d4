//! Engine-level tests of `tpe` and `multivariate-tpe`.

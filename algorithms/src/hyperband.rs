//! Hyperband (in progress).

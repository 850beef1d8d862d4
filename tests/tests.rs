//! Integration tests: the real `sextant` binary, real child processes, a real sled directory.

mod fixture;

mod collector;
mod digits;
mod early_stopping;
mod gpu;
mod manifests;
mod resume;
mod run;
mod serve;
mod validate;

//! Integration tests: the real `sextant-collector` binary, real child processes, and a fake
//! Sextant server on a real socket.

mod fixture;

mod file;
mod kube;
mod output;
mod python;

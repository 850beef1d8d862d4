//! SIGTERM and SIGINT: end the collection cleanly instead of dying with points in memory.
//!
//! The kubelet sends SIGTERM to a native sidecar once the pod's main containers have ended (and
//! SIGKILL after the grace period), so the collector must then deliver what it holds at once.
//! With a command of its own (wrap mode, file mode with `-- COMMAND`) the signal is forwarded to
//! it instead: the collector ends when the command does, as before, with its exit code. Without a
//! command the signal only raises a flag that the collection loops poll.
//!
//! A thread waits on `signal-hook`'s safe iterator (the workspace forbids `unsafe`), so nothing
//! runs inside a signal handler. When a terminal sends SIGINT to the whole foreground process
//! group, the command receives it twice (from the terminal and forwarded); a second SIGINT is
//! what Python's KeyboardInterrupt handling expects to tolerate, and SIGTERM twice is harmless.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Whether a termination signal came, and where to forward it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Termination {
    requested: Arc<AtomicBool>,
    /// The command to forward signals to; 0 when there is none (or it has been reaped, so its
    /// process id may belong to someone else by now).
    forward_to: Arc<AtomicU32>,
}

impl Termination {
    /// Starts listening for SIGTERM and SIGINT.
    pub(crate) fn install() -> std::io::Result<Self> {
        let termination = Self::default();
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        let shared = termination.clone();
        std::thread::Builder::new()
            .name("sextant-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    shared.requested.store(true, Ordering::SeqCst);
                    shared.forward(signal);
                }
            })?;
        Ok(termination)
    }

    /// Whether SIGTERM or SIGINT came.
    pub(crate) fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Forwards signals to `pid` from now on; if one already came, sends SIGTERM now.
    pub(crate) fn forward_to(&self, pid: u32) {
        self.forward_to.store(pid, Ordering::SeqCst);
        if self.requested() {
            self.forward(SIGTERM);
        }
    }

    /// Stops forwarding, once the command has been reaped.
    pub(crate) fn stop_forwarding(&self) {
        self.forward_to.store(0, Ordering::SeqCst);
    }

    fn forward(&self, signal: i32) {
        let pid = self.forward_to.load(Ordering::SeqCst);
        let (Ok(pid), Ok(signal)) = (i32::try_from(pid), Signal::try_from(signal)) else {
            return;
        };
        if pid > 0 {
            // The command may have exited a moment ago: nothing to do then.
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }
}

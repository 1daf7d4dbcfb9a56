//! Ending a guest from outside: `stop` and `kill` send the container a signal; a thread that
//! waits for it records which one and advances the engine's epoch, so the guest traps at its
//! next loop head or call even if it never returns to the host. A guest blocked in a host call
//! (a sleep, a read) is ended by exit shortly after.

use std::sync::atomic::{AtomicI32, Ordering};

use wasmtime::Engine;

static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

/// The signal that ended the guest, if one did.
pub fn stopped_by() -> Option<i32> {
    match STOPPED_BY.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// How long a guest stuck in a host call gets after the epoch trips, before exit.
#[cfg(target_os = "linux")]
const GRACE: std::time::Duration = std::time::Duration::from_millis(500);

#[cfg(target_os = "linux")]
fn signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    set
}

/// Holds the stop signals in this thread; call before any other thread starts, so every
/// thread inherits the mask and only the watcher takes them (a container's PID 1 must not
/// leave them at their default, which the kernel drops for a namespace's init).
pub fn hold_signals() {
    #[cfg(target_os = "linux")]
    let _ = signals().thread_block();
}

/// Starts the watcher that turns a held signal into an epoch interrupt.
pub fn watch(engine: &Engine) {
    #[cfg(target_os = "linux")]
    {
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("berth-stop".into())
            .spawn(move || {
                let Ok(sig) = signals().wait() else { return };
                STOPPED_BY.store(sig as i32, Ordering::SeqCst);
                engine.increment_epoch();
                std::thread::sleep(GRACE);
                std::process::exit(128 + sig as i32);
            })
            .ok();
    }
    #[cfg(not(target_os = "linux"))]
    let _ = engine;
}

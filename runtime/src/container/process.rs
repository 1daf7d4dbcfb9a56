//! Another process, by pid, on any host berth runs on: whether it still runs (with its start
//! time, so a reused pid is not taken for it), and ending it with a signal.
//!
//! The rule: Linux and other Unixes read `/proc` and send real signals. Windows has no signals:
//! there a signal ends the process at once (`TerminateProcess`) with the exit code the signal's
//! default action gives on Linux, 128+N, so `ps` and `wait` report what they would there.

/// A process' start time (an opaque, per-boot value: clock ticks since boot on Linux, the
/// creation time on Windows); `None` if it is gone or a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    imp::start_time(pid)
}

/// Sends signal number `signal` to process `pid` (on Windows: ends it with code 128+`signal`).
pub fn signal(pid: i32, signal: i32) -> std::io::Result<()> {
    imp::signal(pid, signal)
}

/// Ends this process when process `parent` ends (a monitor killed with `kill -9` takes its
/// runner along, as a namespaced container's init dies with its monitor). Ends it at once
/// when `parent` is already gone or is not this process' parent (Linux).
pub fn end_with_parent(parent: i32) {
    imp::end_with_parent(parent)
}

/// Keeps this process' own stdin, stdout and stderr out of the processes it starts from now
/// on. Windows hands every inheritable handle to a child, and a detached monitor holding the
/// starting command's stdout would keep whoever reads it (`$(berth run -d …)`) waiting for
/// the container's end; Unix closes them already (close-on-exec).
pub fn keep_stdio_from_children() {
    #[cfg(windows)]
    imp::keep_stdio_from_children();
}

#[cfg(unix)]
mod imp {
    pub fn end_with_parent(parent: i32) {
        #[cfg(target_os = "linux")]
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
        // Checked after the death signal is set: a parent that died before is seen here.
        if std::os::unix::process::parent_id() as i32 != parent {
            std::process::exit(137);
        }
    }

    pub fn start_time(pid: i32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parens: fields start after the last ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
            return None;
        }
        fields.get(19)?.parse().ok()
    }

    pub fn signal(pid: i32, signal: i32) -> std::io::Result<()> {
        use rustix::process::{Pid, Signal, kill_process};
        let bad = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
        let pid = Pid::from_raw(pid).ok_or_else(bad)?;
        let signal = Signal::from_named_raw(signal).ok_or_else(bad)?;
        kill_process(pid, signal).map_err(std::io::Error::from)
    }
}

#[cfg(windows)]
mod imp {
    use windows_sys::Win32::Foundation::{CloseHandle, FILETIME, HANDLE, STILL_ACTIVE};
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, GetProcessTimes, INFINITE, OpenProcess,
        PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, PROCESS_TERMINATE,
        TerminateProcess, WaitForSingleObject,
    };

    const SYNCHRONIZE: u32 = PROCESS_SYNCHRONIZE;

    /// A process handle, closed when dropped.
    struct Handle(HANDLE);

    // SAFETY: a process handle may be used and closed from any thread.
    unsafe impl Send for Handle {}

    impl Handle {
        fn open(pid: i32, access: u32) -> std::io::Result<Handle> {
            let pid = u32::try_from(pid)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
            // SAFETY: OpenProcess takes plain values and gives a handle or null.
            let h = unsafe { OpenProcess(access, 0, pid) };
            if h.is_null() {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(Handle(h))
            }
        }
    }

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: the handle is ours and open.
            unsafe { CloseHandle(self.0) };
        }
    }

    pub fn keep_stdio_from_children() {
        use windows_sys::Win32::Foundation::{HANDLE_FLAG_INHERIT, SetHandleInformation};
        use windows_sys::Win32::System::Console::{
            GetStdHandle, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
        };
        for which in [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE] {
            // SAFETY: plain values; a missing handle gives null or invalid, which the call
            // refuses harmlessly.
            unsafe {
                let h = GetStdHandle(which);
                if !h.is_null() {
                    SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
                }
            }
        }
    }

    pub fn end_with_parent(parent: i32) {
        let Ok(h) = Handle::open(parent, SYNCHRONIZE) else {
            std::process::exit(137);
        };
        std::thread::spawn(move || {
            let h = h;
            // SAFETY: a valid handle opened for waiting.
            unsafe { WaitForSingleObject(h.0, INFINITE) };
            std::process::exit(137);
        });
    }

    pub fn start_time(pid: i32) -> Option<u64> {
        let h = Handle::open(pid, PROCESS_QUERY_LIMITED_INFORMATION).ok()?;
        let mut code = 0u32;
        // SAFETY: a valid handle and a pointer to a u32 of ours.
        if unsafe { GetExitCodeProcess(h.0, &mut code) } == 0 || code != STILL_ACTIVE as u32 {
            return None;
        }
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        // SAFETY: a valid handle and four FILETIMEs of ours.
        let ok = unsafe { GetProcessTimes(h.0, &mut created, &mut exited, &mut kernel, &mut user) };
        if ok == 0 {
            return None;
        }
        Some((u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime))
    }

    pub fn signal(pid: i32, signal: i32) -> std::io::Result<()> {
        let h = Handle::open(pid, PROCESS_TERMINATE)?;
        let code = 128 + signal.clamp(1, 64) as u32;
        // SAFETY: a valid handle opened for termination.
        if unsafe { TerminateProcess(h.0, code) } == 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

//! Long-running processes in a namespace ([`Proc`]): output captured to files, killed on drop.

use super::*;

/// A long-running process spawned in a namespace with [`Netns::spawn`].
///
/// On `Drop` its process group gets SIGTERM, then SIGKILL after 3 s. If the thread is
/// panicking (a failing test), the tails of its stdout and stderr are printed first, so the
/// test output shows what the process said.
#[derive(Debug)]
pub struct Proc {
    pub(super) label: String,
    pub(super) ns: String,
    pub(super) cmdline: String,
    pub(super) child: Mutex<Child>,
    pub(super) stdout_path: PathBuf,
    pub(super) stderr_path: PathBuf,
    pub(super) _dir: Arc<ScratchDir>,
}

impl Proc {
    /// The label given at spawn.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.lock().id()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Path of the file its stdout goes to.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    /// Path of the file its stderr goes to.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// Everything it has written to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    /// Everything it has written to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Its exit status, if it has exited.
    pub fn try_status(&self) -> Option<ExitStatus> {
        self.lock().try_wait().ok().flatten()
    }

    /// Whether it is still running.
    pub fn is_running(&self) -> bool {
        self.try_status().is_none()
    }

    /// Waits until its stdout has a line containing `needle`; fails early, with its stderr,
    /// if it exits first.
    pub fn wait_stdout_line(&self, needle: &str, timeout: Duration) -> Result<String, LabError> {
        self.wait_line(&self.stdout_path, "stdout", needle, timeout)
    }

    /// Waits until its stderr has a line containing `needle`; fails early if it exits.
    pub fn wait_stderr_line(&self, needle: &str, timeout: Duration) -> Result<String, LabError> {
        self.wait_line(&self.stderr_path, "stderr", needle, timeout)
    }

    /// Waits until a file it writes (e.g. a log file) has a line containing `needle`;
    /// fails early if it exits.
    pub fn wait_file_line(
        &self,
        path: &Path,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, LabError> {
        self.wait_line(path, &path.display().to_string(), needle, timeout)
    }

    fn wait_line(
        &self,
        path: &Path,
        stream: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, LabError> {
        let what = format!(
            "{} to print a line containing {needle:?} on {stream}",
            self.label
        );
        let r = try_wait_for(timeout, &what, || {
            if let Some(line) = find_line(path, needle) {
                return Some(Ok(line));
            }
            self.try_status().map(Err)
        })?;
        r.or_else(|status| {
            // It may have printed the line just before exiting.
            find_line(path, needle).ok_or_else(|| LabError::Exited {
                label: self.label.clone(),
                ns: self.ns.clone(),
                what,
                status,
                stderr: tail_lines(self.stderr().trim(), 10),
            })
        })
    }

    /// Sends `signal` to its process group.
    pub fn signal(&self, signal: libc::c_int) {
        let mut child = self.lock();
        // Never signal a reaped child: its pid may belong to someone else by now.
        if let Ok(None) = child.try_wait() {
            kill_group(child.id(), signal);
        }
    }

    /// Waits for it to exit on its own, at most `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus, LabError> {
        try_wait_for(timeout, &format!("{} to exit", self.label), || {
            self.try_status()
        })
    }

    /// Stops it: SIGTERM to the process group, SIGKILL after 3 s; returns the exit status.
    pub fn stop(&self) -> Option<ExitStatus> {
        if let Some(s) = self.try_status() {
            return Some(s);
        }
        self.signal(libc::SIGTERM);
        if let Ok(s) = self.wait_exit(Duration::from_secs(3)) {
            return Some(s);
        }
        self.signal(libc::SIGKILL);
        self.lock().wait().ok()
    }

    fn dump_on_panic(&self) {
        if !thread::panicking() {
            return;
        }
        eprintln!("---- {} in {}: `{}`", self.label, self.ns, self.cmdline);
        for (name, path) in [("stdout", &self.stdout_path), ("stderr", &self.stderr_path)] {
            let text = read_lossy(path);
            if !text.trim().is_empty() {
                eprintln!(
                    "-- {name} (last 30 lines):\n{}",
                    tail_lines(text.trim_end(), 30)
                );
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let status = self.stop();
        self.dump_on_panic();
        if thread::panicking() {
            if let Some(s) = status {
                let how = s
                    .signal()
                    .map(|n| format!("signal {n}"))
                    .unwrap_or_else(|| s.to_string());
                eprintln!("-- {} ended: {how}", self.label);
            }
        }
    }
}

pub(super) fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

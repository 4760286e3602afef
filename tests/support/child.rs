//! Child processes: a test re-runs its own test binary, restricted to one
//! test, as a child process in a role — to SIGKILL it at a random moment,
//! to let it hold a lock, or to survive its panic, SIGBUS or hang.
//!
//! The test dispatches on [`role`]: `None` in the parent, the role in the
//! child. The parent builds the child with [`command`] (adding any
//! parameters with `Command::env`), and either runs it to the end or
//! watches its stdout line by line with [`Monitored`].

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The environment variable naming the role of a child process.
pub const ROLE_ENV: &str = "MILLPOND_TEST_CHILD";
/// The environment variable passing a directory to a child process.
pub const DIR_ENV: &str = "MILLPOND_TEST_CHILD_DIR";

/// The role this process was started with, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// The directory passed to this child process.
pub fn dir() -> PathBuf {
    PathBuf::from(std::env::var_os(DIR_ENV).expect("child started without a directory"))
}

/// A parameter the parent passed to this child with `Command::env`.
pub fn param(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child started without {name}"))
}

/// A numeric parameter the parent passed to this child.
pub fn param_u64(name: &str) -> u64 {
    let v = param(name);
    v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
}

/// A command re-running exactly the test `test` of the current test binary
/// (ignored or not) as a child with `role` and `dir` in its environment and
/// no stdin.
pub fn command(test: &str, role: &str, dir: &Path) -> Command {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(DIR_ENV, dir)
        .stdin(Stdio::null());
    cmd
}

/// Reads `stream` to its end on a thread of its own (so that a child never
/// blocks on a full pipe); the thread returns what it read.
pub fn capture(mut stream: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes); // whatever there is, for the failure message
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits up to `limit` for `child` to exit; `None` if it is still running.
/// Polls every 300 µs for the first 100 ms (kill schedules rely on that
/// precision), then every 10 ms.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait on the child") {
            return Some(status);
        }
        let waited = start.elapsed();
        if waited >= limit {
            return None;
        }
        let pause =
            if waited < Duration::from_millis(100) { Duration::from_micros(300) } else { Duration::from_millis(10) };
        std::thread::sleep(pause.min(limit - waited));
    }
}

/// How a [`Monitored`] child ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// The complete lines of its stdout not taken before it ended.
    pub rest: Vec<String>,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// A running child whose stdout is read line by line and whose stderr is
/// kept for failure messages. Only complete lines count: a kill may cut the
/// last one. Dropping it kills (SIGKILL) and reaps the child if it still
/// runs, so a failing test leaves no process behind.
pub struct Monitored {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

impl Monitored {
    /// Spawns `cmd` with its stdout and stderr piped to this process.
    pub fn spawn(cmd: &mut Command) -> Monitored {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the child");
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        let stdout = std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    // Whether or not anyone still listens, read on to the
                    // end: the child never writes into a closed pipe.
                    Ok(n) if n > 0 && line.ends_with('\n') => {
                        let _ = tx.send(line.trim_end_matches('\n').to_string());
                    }
                    _ => return,
                }
            }
        });
        Monitored { child, lines, stdout: Some(stdout), stderr: Some(capture(err)) }
    }

    /// The child's stdin, if the command gave it one (`Stdio::piped()`).
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The next complete line of stdout before `deadline`; `Timeout`, or
    /// `Disconnected` once the child closed its stdout (it exited).
    pub fn next_line(&self, deadline: Instant) -> Result<String, RecvTimeoutError> {
        self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
    }

    /// Waits up to `timeout` for a line containing `marker` and returns it
    /// from the marker on (the test harness may print `test <name> ... `
    /// before it); every line before it goes to `other`. Fails the test
    /// with `why` (and the child's stderr) if no such line comes.
    pub fn expect_line(&mut self, marker: &str, timeout: Duration, mut other: impl FnMut(String), why: &str) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_line(deadline) {
                Ok(l) => match l.find(marker) {
                    Some(i) => return l[i..].to_string(),
                    None => other(l),
                },
                Err(_) => self.fail(why),
            }
        }
    }

    /// Passes every line to `each` until `deadline`; fails the test with
    /// `why` (and the child's stderr) if the child exits before.
    pub fn lines_until(&mut self, deadline: Instant, mut each: impl FnMut(String), why: &str) {
        loop {
            match self.next_line(deadline) {
                Ok(l) => each(l),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => self.fail(why),
            }
        }
    }

    /// Whether the child has exited.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Waits up to `limit` for the child to exit (see [`wait_timeout`]).
    pub fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.child, limit)
    }

    /// Kills the child with SIGKILL (`kill -9`), reaps it, and returns how it
    /// ended (by SIGKILL, unless it had exited already).
    pub fn kill9(mut self) -> Finished {
        let _ = self.child.kill(); // it may have exited already: its status says so
        self.finish()
    }

    /// Waits for the child to exit by itself and returns how it ended.
    pub fn wait(mut self) -> Finished {
        self.finish()
    }

    /// Kills the child (if it still runs) and fails the test with `why`,
    /// the child's exit status and its stderr.
    pub fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill(); // the child this test started; it may be gone already
        let status = self.child.wait().map(|s| format!("{s:?}")).unwrap_or_default();
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        panic!("{why} (status {status}); child stderr:\n{stderr}");
    }

    fn finish(&mut self) -> Finished {
        let status = self.child.wait().expect("wait for the child");
        if let Some(h) = self.stdout.take() {
            h.join().expect("the child's stdout reader");
        }
        let rest = self.lines.try_iter().collect();
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        Finished { status, rest, stderr }
    }
}

impl Drop for Monitored {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill(); // the child this test started, by its handle
            let _ = self.child.wait();
        }
    }
}

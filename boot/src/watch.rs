//! Watching a child process with a time limit: its output line by line as it
//! comes, and a kill when the limit passes.
//!
//! Used for QEMU and for host `cargo test` runs, neither of which may hang the
//! whole test run. `cargo test` runs its test binaries as children of its own,
//! which a kill of cargo alone would leave running: such a child is started in a
//! process group of its own ([`own_group`]), and the kill reaches the group.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a watched process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself.
    Exited(ExitStatus),
    /// It hit the time limit and was killed.
    TimedOut,
}

/// Makes `command` start a process group of its own, so that a timeout kills
/// its children too.
pub fn own_group(command: &mut Command) -> &mut Command {
    command.process_group(0)
}

/// Passes each line that `child` writes on its piped stdout and stderr to
/// `line`, until it exits or `limit` passes; then kills it and its group.
pub fn watch(
    child: &mut Child,
    limit: Duration,
    mut line: impl FnMut(&str),
) -> Result<Ended, String> {
    let (sender, receiver) = mpsc::channel();
    let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>);
    let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>);
    for stream in stdout.into_iter().chain(stderr) {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for text in BufReader::new(stream).lines().map_while(Result::ok) {
                if sender.send(text).is_err() {
                    break;
                }
            }
        });
    }
    drop(sender);
    let deadline = Instant::now().checked_add(limit);
    let mut streams_open = true;
    loop {
        if streams_open {
            match receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(text) => line(&text),
                Err(mpsc::RecvTimeoutError::Disconnected) => streams_open = false,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if !streams_open
            && let Some(status) = child.try_wait().map_err(|e| format!("waiting: {e}"))?
        {
            return Ok(Ended::Exited(status));
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            kill(child);
            return Ok(Ended::TimedOut);
        }
    }
}

/// Kills `child`, and its process group if it leads one.
pub fn kill(child: &mut Child) {
    let group = format!("-{}", child.id());
    // Fails harmlessly when the child leads no group of its own.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(std::process::Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    fn shell(script: &str) -> Child {
        let mut command = Command::new("sh");
        command.args(["-c", script]).stdout(Stdio::piped()).stderr(Stdio::piped());
        own_group(&mut command).spawn().expect("sh")
    }

    #[test]
    fn lines_and_the_exit_status_are_seen() {
        let mut child = shell("echo one; echo two >&2; exit 3");
        let mut lines = Vec::new();
        let ended = watch(&mut child, Duration::from_secs(20), |text| lines.push(text.to_string()));
        let Ok(Ended::Exited(status)) = ended else { panic!("{ended:?}") };
        assert_eq!(status.code(), Some(3));
        lines.sort();
        assert_eq!(lines, ["one", "two"]);
    }

    #[test]
    fn a_hang_is_killed_at_the_limit_with_its_children() {
        let started = Instant::now();
        // The grandchild holds stdout open: only a kill of the group ends it.
        let mut child = shell("echo started; sleep 60 & sleep 60");
        let ended = watch(&mut child, Duration::from_millis(500), |_| {});
        assert_eq!(ended, Ok(Ended::TimedOut));
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

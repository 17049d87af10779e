//! A scripted Bochs session: the kernel's monitor driven over the serial port,
//! as `session::Session` does under QEMU.
//!
//! Bochs connects its first serial port to a TCP port of 127.0.0.1 where the
//! runner listens (`socket-client` mode), so the runner can type as well as
//! read. How the run ends is read as in `bochs::run_captured`: the kernel's
//! verdict on Bochs's standard output (its debug port), and for a power-off,
//! Bochs's own log saying the guest switched the machine off through ACPI.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use super::{Files, GRACE, LineReader, confirmed, start, unsupported, verdict};
use crate::options::Run;
use crate::qemu::Outcome;
use crate::session::Console;

/// How long Bochs may take to start and connect its serial port.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// A running Bochs whose serial console we drive.
pub struct Session {
    child: Child,
    console: Console,
    files: Files,
    /// Bochs's standard output, where the kernel's verdict appears.
    output: LineReader,
}

impl Session {
    /// Boots `image` in Bochs with `run`'s options, the serial port on a
    /// connection to us.
    pub fn start(image: &Path, run: &Run) -> Result<Session, String> {
        if let Some(why) = unsupported(run) {
            return Err(why.into());
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| format!("cannot listen for Bochs's serial port: {e}"))?;
        let port = listener.local_addr().map_err(|e| format!("serial port: {e}"))?.port();
        let files = Files::beside(image);
        let mut child = start(image, run, &files, Some(port))?;
        let stream = match accept(&listener, &mut child) {
            Ok(stream) => stream,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                let panics = super::bochs_panics(&files.log).join("; ");
                return Err(format!("{why} (Bochs's panics: {panics:?})"));
            }
        };
        let input = stream.try_clone().map_err(|e| format!("serial port: {e}"))?;
        let console = Console::new(input, stream);
        Ok(Session { child, console, files, output: LineReader::default() })
    }

    /// The serial console.
    pub fn console(&mut self) -> &mut Console {
        &mut self.console
    }

    /// Bochs's log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.files.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits for the kernel's verdict and Bochs's end; kills Bochs after
    /// `limit`. A `power off (acpi)` counts as [`Outcome::PoweredOff`] only if
    /// Bochs logged the ACPI power-off.
    pub fn finish(mut self, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        let mut outcome = None;
        while Instant::now() < deadline {
            self.console.unread();
            let path = &self.files.output;
            self.output.poll(path, false, |line| outcome = outcome.or(verdict(line)));
            if let Some(outcome) = outcome {
                let status = self.wait_for_exit(GRACE);
                self.console.unread();
                return confirmed(outcome, &self.files.log, status);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Outcome::Exited(status.code());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Outcome::TimedOut
    }

    /// Waits up to `limit` for Bochs to end by itself; its exit status.
    fn wait_for_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for Bochs to connect to `listener`, while it runs.
fn accept(listener: &TcpListener, child: &mut Child) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).map_err(|e| format!("serial port: {e}"))?;
    let deadline = Instant::now() + CONNECT_LIMIT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).map_err(|e| format!("serial port: {e}"))?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("serial port: {e}")),
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("Bochs ended ({status}) before connecting its serial port"));
        }
        if Instant::now() >= deadline {
            return Err(format!("Bochs did not connect its serial port within {CONNECT_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

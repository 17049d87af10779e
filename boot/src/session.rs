//! A scripted QEMU session: type on the kernel's serial console, wait for what
//! it prints, take screenshots, and hear from QEMU how the machine's power went.
//!
//! The serial console is QEMU's stdio ([`Console`], which Bochs sessions use
//! too, over a socket). Output is read as raw bytes (a prompt has no newline),
//! echoed to our stdout as lines prefixed `    | `, and kept so that
//! [`Console::expect`] can wait for a text. Screenshots use QEMU's human
//! monitor on a Unix socket (`screendump`), which writes a PPM file.
//!
//! QEMU's machine protocol (QMP), on a second socket, says why the machine
//! stopped or restarted: a `SHUTDOWN` event with reason `guest-shutdown` when
//! the guest switched it off (ACPI), `guest-reset` when it reset it (which
//! `-no-reboot` turns into an exit with status 0, like a power-off), and a
//! `RESET` event when a reset restarts it. So a check can tell an ACPI
//! power-off from a reset or a triple fault, which end QEMU the same way.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::options::Run;
use crate::qemu::{self, Outcome};

/// A serial console we type on and read from.
pub struct Console {
    input: Box<dyn Write + Send>,
    chunks: Receiver<Vec<u8>>,
    output: String,
    /// How much of `output` earlier `expect`s consumed.
    consumed: usize,
    /// Bytes of `output` already echoed.
    echoed: usize,
}

impl Console {
    /// A console that types into `input` and reads `output` (on a thread of
    /// its own) until it ends.
    pub fn new(
        input: impl Write + Send + 'static,
        mut output: impl Read + Send + 'static,
    ) -> Console {
        let (sender, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read @ 1..) = output.read(&mut buffer) {
                if sender.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        Console { input: Box::new(input), chunks, output: String::new(), consumed: 0, echoed: 0 }
    }

    /// Waits until the kernel prints `text`; returns everything printed since
    /// the previous `expect`, up to and including `text`.
    pub fn expect(&mut self, text: &str, limit: Duration) -> Result<String, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = self.output[self.consumed..].find(text) {
                let end = self.consumed + at + text.len();
                let seen = self.output[self.consumed..end].to_string();
                self.consumed = end;
                return Ok(seen);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(chunk) => {
                    self.output.push_str(&String::from_utf8_lossy(&chunk));
                    self.echo();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("the emulator ended before {text:?}"));
                }
                Err(RecvTimeoutError::Timeout) if left.is_zero() => {
                    return Err(format!("no {text:?} within {} s", limit.as_secs()));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Takes in what has arrived, without waiting; returns what no `expect`
    /// has consumed yet.
    pub fn unread(&mut self) -> &str {
        while let Ok(chunk) = self.chunks.try_recv() {
            self.output.push_str(&String::from_utf8_lossy(&chunk));
            self.echo();
        }
        &self.output[self.consumed..]
    }

    /// Echoes the complete lines received so far.
    fn echo(&mut self) {
        while let Some(newline) = self.output[self.echoed..].find('\n') {
            let line = &self.output[self.echoed..self.echoed + newline];
            println!("    | {}", line.trim_end());
            self.echoed += newline + 1;
        }
    }

    /// Types `line` and Enter on the serial console.
    pub fn send(&mut self, line: &str) -> Result<(), String> {
        self.type_text(&format!("{line}\r"))
    }

    /// Types `text` on the serial console (no Enter).
    pub fn type_text(&mut self, text: &str) -> Result<(), String> {
        self.input
            .write_all(text.as_bytes())
            .and_then(|()| self.input.flush())
            .map_err(|e| format!("cannot type on the serial console: {e}"))
    }
}

/// A power event QEMU reported (QMP `SHUTDOWN` or `RESET`), with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerEvent {
    /// QEMU stops the machine: `guest-shutdown` (the guest switched it off),
    /// `guest-reset` (a reset, under `-no-reboot`), `host-signal`, ...
    Shutdown(String),
    /// The machine restarts: `guest-reset` when the guest reset it.
    Reset(String),
}

/// The reason QMP gives when the guest switched the machine off.
const GUEST_SHUTDOWN: &str = "guest-shutdown";
/// The reason QMP gives when the guest reset the machine.
pub const GUEST_RESET: &str = "guest-reset";

/// The power event in a line of QMP, if it is one.
fn power_event(line: &str) -> Option<PowerEvent> {
    let field = |name: &str| {
        let key = format!("\"{name}\": \"");
        let start = line.find(&key)? + key.len();
        line[start..].split('"').next().map(str::to_string)
    };
    let reason = field("reason").unwrap_or_default();
    match field("event")?.as_str() {
        "SHUTDOWN" => Some(PowerEvent::Shutdown(reason)),
        "RESET" => Some(PowerEvent::Reset(reason)),
        _ => None,
    }
}

/// A running QEMU whose serial console we drive.
pub struct Session {
    child: Child,
    console: Console,
    monitor: PathBuf,
    monitor_connection: Option<UnixStream>,
    qmp: PathBuf,
    /// QEMU's power events, collected by `qmp_reader`.
    events: Arc<Mutex<Vec<PowerEvent>>>,
    qmp_reader: Option<JoinHandle<()>>,
}

/// How long QEMU may take to open its QMP socket.
const QMP_LIMIT: Duration = Duration::from_secs(10);

impl Session {
    /// Boots `image` headless with a monitor socket at `monitor` (and a QMP
    /// socket beside it).
    pub fn start(image: &Path, run: &Run, monitor: &Path) -> Result<Session, String> {
        let qmp = monitor.with_extension("qmp");
        let _ = std::fs::remove_file(monitor);
        let _ = std::fs::remove_file(&qmp);
        let mut command = qemu::command(image, run, None)?;
        command.arg("-monitor").arg(format!("unix:{},server=on,wait=off", monitor.display()));
        command.arg("-qmp").arg(format!("unix:{},server=on,wait=off", qmp.display()));
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(qemu::spawn_error)?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut session = Session {
            child,
            console: Console::new(stdin, stdout),
            monitor: monitor.to_path_buf(),
            monitor_connection: None,
            qmp,
            events: Arc::default(),
            qmp_reader: None,
        };
        session.listen_to_qmp()?;
        Ok(session)
    }

    /// Connects to QMP, enters command mode (only then does QEMU send events)
    /// and collects power events on a thread until QEMU ends.
    fn listen_to_qmp(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + QMP_LIMIT;
        let socket = loop {
            match UnixStream::connect(&self.qmp) {
                Ok(socket) => break socket,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(format!("cannot reach QEMU's QMP socket: {e}")),
            }
        };
        socket.set_read_timeout(Some(QMP_LIMIT)).ok();
        let mut writer = socket.try_clone().map_err(|e| format!("QMP: {e}"))?;
        let mut reader = BufReader::new(socket);
        let mut line = String::new();
        // The greeting, then the answer to `qmp_capabilities`.
        reader.read_line(&mut line).map_err(|e| format!("QMP greeting: {e}"))?;
        writer
            .write_all(b"{\"execute\": \"qmp_capabilities\"}\n")
            .map_err(|e| format!("QMP: {e}"))?;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(1..) if line.contains("\"return\"") => break,
                Ok(1..) => {}
                _ => return Err("QMP did not answer qmp_capabilities".into()),
            }
        }
        reader.get_ref().set_read_timeout(None).ok();
        let events = Arc::clone(&self.events);
        self.qmp_reader = Some(std::thread::spawn(move || {
            let _keep_open = writer;
            for line in reader.lines().map_while(Result::ok) {
                if let Some(event) = power_event(&line) {
                    events.lock().expect("events lock").push(event);
                }
            }
        }));
        Ok(())
    }

    /// The serial console.
    pub fn console(&mut self) -> &mut Console {
        &mut self.console
    }

    /// Waits until the kernel prints `text` (see [`Console::expect`]).
    pub fn expect(&mut self, text: &str, limit: Duration) -> Result<String, String> {
        self.console.expect(text, limit)
    }

    /// Types `line` and Enter on the serial console.
    pub fn send(&mut self, line: &str) -> Result<(), String> {
        self.console.send(line)
    }

    /// The power events QEMU has reported so far.
    pub fn events(&self) -> Vec<PowerEvent> {
        self.events.lock().expect("events lock").clone()
    }

    /// Sends one command to QEMU's human monitor and waits for its next prompt,
    /// which QEMU prints when the command is done.
    fn monitor_command(&mut self, command: &str) -> Result<(), String> {
        if self.monitor_connection.is_none() {
            let socket = UnixStream::connect(&self.monitor)
                .map_err(|e| format!("cannot reach the QEMU monitor: {e}"))?;
            socket.set_read_timeout(Some(Duration::from_millis(100))).ok();
            self.monitor_connection = Some(socket);
            self.monitor_prompt()?;
        }
        let socket = self.monitor_connection.as_mut().expect("connected above");
        writeln!(socket, "{command}").map_err(|e| format!("monitor: {e}"))?;
        self.monitor_prompt()
    }

    /// Reads the monitor's output up to its `(qemu) ` prompt.
    fn monitor_prompt(&mut self) -> Result<(), String> {
        let socket = self.monitor_connection.as_mut().expect("monitor connected");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut buffer = [0u8; 1024];
        while Instant::now() < deadline {
            if let Ok(read @ 1..) = socket.read(&mut buffer) {
                seen.extend_from_slice(&buffer[..read]);
                if String::from_utf8_lossy(&seen).contains("(qemu) ") {
                    return Ok(());
                }
            }
        }
        Err("the QEMU monitor did not answer".into())
    }

    /// Types `text` and Enter on the emulated PS/2 keyboard (lower-case letters,
    /// digits and spaces).
    pub fn type_on_keyboard(&mut self, text: &str) -> Result<(), String> {
        for character in text.chars() {
            let key = match character {
                ' ' => "spc".to_string(),
                'a'..='z' | '0'..='9' => character.to_string(),
                other => return Err(format!("cannot type {other:?} on the keyboard")),
            };
            self.monitor_command(&format!("sendkey {key}"))?;
        }
        self.monitor_command("sendkey ret")
    }

    /// Saves the screen as a PPM file at `path`.
    pub fn screendump(&mut self, path: &Path) -> Result<(), String> {
        let _ = std::fs::remove_file(path);
        self.monitor_command(&format!("screendump {}", path.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                std::thread::sleep(Duration::from_millis(200));
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("screendump produced no file".into())
    }

    /// Waits for QEMU to end by itself; kills it after `limit`. An exit with
    /// status 0 after QMP's `SHUTDOWN` with reason `guest-shutdown` is
    /// [`Outcome::PoweredOff`]; after any other reason it stays `Exited`.
    pub fn finish(mut self, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            self.console.unread();
            if let Ok(Some(status)) = self.child.try_wait() {
                self.console.unread();
                // QEMU has closed the socket: the reader has seen every event.
                if let Some(reader) = self.qmp_reader.take() {
                    let _ = reader.join();
                }
                let outcome = Outcome::from_status(status);
                let shutdown = self.events().into_iter().rev().find_map(|event| match event {
                    PowerEvent::Shutdown(reason) => Some(reason),
                    PowerEvent::Reset(_) => None,
                });
                return match (outcome, shutdown.as_deref()) {
                    (Outcome::Exited(Some(0)), Some(GUEST_SHUTDOWN)) => Outcome::PoweredOff,
                    _ => outcome,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Outcome::TimedOut
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.monitor);
        let _ = std::fs::remove_file(&self.qmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmp_power_events_are_read() {
        let off = r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#;
        assert_eq!(power_event(off), Some(PowerEvent::Shutdown("guest-shutdown".into())));
        let reset = r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESET", "data": {"guest": true, "reason": "guest-reset"}}"#;
        assert_eq!(power_event(reset), Some(PowerEvent::Reset("guest-reset".into())));
        let stop = r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#;
        assert_eq!(power_event(stop), None);
        assert_eq!(power_event(r#"{"return": {}}"#), None);
    }
}

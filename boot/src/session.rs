//! A scripted QEMU session: type on the kernel's serial console, wait for what
//! it prints, take screenshots.
//!
//! The serial console is QEMU's stdio. Output is read as raw bytes (a prompt has
//! no newline), echoed to our stdout as lines prefixed `    | `, and kept so that
//! [`Session::expect`] can wait for a text. Screenshots use QEMU's human monitor
//! on a Unix socket (`screendump`), which writes a PPM file.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::options::Run;
use crate::qemu::{self, Outcome};

/// A running QEMU whose serial console we drive.
pub struct Session {
    child: Child,
    stdin: ChildStdin,
    chunks: Receiver<Vec<u8>>,
    output: String,
    /// How much of `output` earlier `expect`s consumed.
    consumed: usize,
    /// Bytes of `output` already echoed.
    echoed: usize,
    monitor: PathBuf,
    monitor_connection: Option<UnixStream>,
}

impl Session {
    /// Boots `image` headless with a monitor socket at `monitor`.
    pub fn start(image: &Path, run: &Run, monitor: &Path) -> Result<Session, String> {
        let _ = std::fs::remove_file(monitor);
        let mut command = qemu::command(image, run)?;
        command.arg("-monitor").arg(format!("unix:{},server=on,wait=off", monitor.display()));
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(qemu::spawn_error)?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let (sender, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read @ 1..) = stdout.read(&mut buffer) {
                if sender.send(buffer[..read].to_vec()).is_err() {
                    break;
                }
            }
        });
        let monitor = monitor.to_path_buf();
        Ok(Session {
            child,
            stdin,
            chunks,
            output: String::new(),
            consumed: 0,
            echoed: 0,
            monitor,
            monitor_connection: None,
        })
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
                    return Err(format!("QEMU ended before {text:?}"));
                }
                Err(RecvTimeoutError::Timeout) if left.is_zero() => {
                    return Err(format!("no {text:?} within {} s", limit.as_secs()));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
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
        self.stdin
            .write_all(format!("{line}\r").as_bytes())
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("cannot type on the serial console: {e}"))
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

    /// Waits for QEMU to end by itself; kills it after `limit`.
    pub fn finish(mut self, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            while let Ok(chunk) = self.chunks.try_recv() {
                self.output.push_str(&String::from_utf8_lossy(&chunk));
                self.echo();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Outcome::from_status(status);
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
    }
}

//! The emulators and firmware that test runs need, looked for before any run.
//!
//! A missing tool used to end `make test` at the first run that needed it, with
//! no summary line, or to count as the failure of whichever check needed it
//! first. Now each missing tool is looked for once, up front, and counts as one
//! failure named after it (`tool::bochs`, with the package that provides it);
//! the runs that need it are skipped and counted as skipped, and the rest still
//! run and the summary is printed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::options::Run;

/// Something a run needs from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    /// `qemu-system-x86_64`.
    Qemu,
    /// UEFI firmware for QEMU.
    Ovmf,
    /// The `bochs` program.
    Bochs,
    /// Bochs's system BIOS.
    BochsBios,
    /// The Cirrus VGA BIOS that Bochs runs use.
    VgaBios,
    /// Bochs's text-terminal display plugin.
    BochsDisplay,
    /// GDB, for the check that `make gdb` stops at the kernel's entry.
    Gdb,
}

/// Bochs's text-terminal display plugin, from Debian's `bochs-term`.
const BOCHS_DISPLAY_PLUGIN: &str = "libbx_term_gui.so";
/// Where Bochs looks for plugins unless `LTDL_LIBRARY_PATH` says.
const BOCHS_PLUGIN_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/bochs/plugins",
    "/usr/lib/bochs/plugins",
    "/usr/local/lib/bochs/plugins",
];

impl Tool {
    /// Its name in the test's name (`tool::NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Tool::Qemu => "qemu-system-x86_64",
            Tool::Ovmf => "ovmf",
            Tool::Bochs => "bochs",
            Tool::BochsBios => "bochs_bios",
            Tool::VgaBios => "vga_bios",
            Tool::BochsDisplay => "bochs_term_display",
            Tool::Gdb => "gdb",
        }
    }

    /// How to install it.
    fn install(self) -> &'static str {
        match self {
            Tool::Qemu => "apt-get install qemu-system-x86",
            Tool::Ovmf => "apt-get install ovmf",
            Tool::Bochs => "apt-get install bochs",
            Tool::BochsBios => "apt-get install bochsbios",
            Tool::VgaBios => "apt-get install vgabios",
            Tool::BochsDisplay => "apt-get install bochs-term",
            Tool::Gdb => "apt-get install gdb",
        }
    }

    /// The tools a boot with `run` needs.
    pub fn needed_by(run: &Run) -> Vec<Tool> {
        let mut tools = if run.bochs {
            vec![Tool::Bochs, Tool::BochsBios, Tool::VgaBios, Tool::BochsDisplay]
        } else if run.uefi {
            vec![Tool::Qemu, Tool::Ovmf]
        } else {
            vec![Tool::Qemu]
        };
        if run.gdb {
            tools.push(Tool::Gdb);
        }
        tools
    }
}

/// Where the tools are looked for: the program search path, Bochs's plugin
/// path, and a way to tell whether a file exists (all replaceable in tests).
pub struct Host {
    pub path: OsString,
    pub plugin_path: Option<OsString>,
    pub exists: fn(&Path) -> bool,
}

impl Host {
    /// This machine.
    pub fn this() -> Host {
        Host {
            path: std::env::var_os("PATH").unwrap_or_default(),
            plugin_path: std::env::var_os("LTDL_LIBRARY_PATH"),
            exists: |path| path.exists(),
        }
    }

    /// Whether `program` is in a directory of the search path.
    fn has_program(&self, program: &str) -> bool {
        std::env::split_paths(&self.path).any(|dir| (self.exists)(&dir.join(program)))
    }

    /// Whether one of `files` exists.
    fn has_any(&self, files: impl IntoIterator<Item = PathBuf>) -> bool {
        files.into_iter().any(|file| (self.exists)(&file))
    }

    /// Whether `tool` is there.
    pub fn has(&self, tool: Tool) -> bool {
        match tool {
            Tool::Qemu => self.has_program("qemu-system-x86_64"),
            Tool::Ovmf => self.has_any(crate::qemu::OVMF_PATHS.iter().map(PathBuf::from)),
            Tool::Bochs => self.has_program("bochs"),
            Tool::BochsBios => self.has_any([PathBuf::from(crate::bochs::BIOS)]),
            Tool::VgaBios => self.has_any([PathBuf::from(crate::bochs::VGA_BIOS)]),
            Tool::Gdb => self.has_program("gdb"),
            Tool::BochsDisplay => {
                let listed = self.plugin_path.iter().flat_map(std::env::split_paths);
                let dirs = listed.chain(BOCHS_PLUGIN_DIRS.iter().map(PathBuf::from));
                self.has_any(dirs.map(|dir| dir.join(BOCHS_DISPLAY_PLUGIN)))
            }
        }
    }
}

/// The tools found missing, each with why.
#[derive(Debug, Default)]
pub struct Missing(BTreeMap<Tool, String>);

impl Missing {
    /// Looks for every tool that one of `runs` needs.
    pub fn look_for<'a>(runs: impl IntoIterator<Item = &'a Run>, host: &Host) -> Missing {
        let mut missing = BTreeMap::new();
        for tool in runs.into_iter().flat_map(Tool::needed_by) {
            if !missing.contains_key(&tool) && !host.has(tool) {
                missing.insert(tool, format!("not found: install it with `{}`", tool.install()));
            }
        }
        Missing(missing)
    }

    /// Each missing tool's test name and why it failed.
    pub fn failures(&self) -> impl Iterator<Item = (String, &str)> {
        self.0.iter().map(|(tool, why)| (format!("tool::{}", tool.name()), why.as_str()))
    }

    /// The first missing tool that `run` needs, if one is.
    pub fn blocking(&self, run: &Run) -> Option<Tool> {
        Tool::needed_by(run).into_iter().find(|tool| self.0.contains_key(tool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing_installed() -> Host {
        Host { path: "/nowhere:/nor/here".into(), plugin_path: None, exists: |_| false }
    }

    fn everything_installed() -> Host {
        Host { path: "/bin".into(), plugin_path: None, exists: |_| true }
    }

    fn runs() -> Vec<Run> {
        let bochs = Run { bochs: true, ..Run::default() };
        let uefi = Run { uefi: true, ..Run::default() };
        vec![Run::default(), bochs.clone(), uefi, Run::default(), bochs]
    }

    #[test]
    fn each_missing_tool_is_one_named_failure() {
        let missing = Missing::look_for(&runs(), &nothing_installed());
        let names: Vec<String> = missing.failures().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "tool::qemu-system-x86_64",
                "tool::ovmf",
                "tool::bochs",
                "tool::bochs_bios",
                "tool::vga_bios",
                "tool::bochs_term_display"
            ]
        );
        assert!(missing.failures().all(|(_, why)| why.contains("apt-get install")));
    }

    #[test]
    fn runs_that_need_a_missing_tool_are_blocked() {
        let missing = Missing::look_for(&runs(), &nothing_installed());
        assert_eq!(missing.blocking(&Run::default()), Some(Tool::Qemu));
        assert_eq!(missing.blocking(&Run { bochs: true, ..Run::default() }), Some(Tool::Bochs));
        let found = Missing::look_for(&runs(), &everything_installed());
        assert_eq!(found.failures().count(), 0);
        assert_eq!(found.blocking(&Run { uefi: true, ..Run::default() }), None);
    }

    #[test]
    fn only_needed_tools_are_looked_for() {
        let missing = Missing::look_for(&[Run::default()], &nothing_installed());
        assert_eq!(missing.failures().count(), 1);
    }

    #[test]
    fn this_machine_is_searched_through_its_path() {
        let host = Host { path: "/no/such/dir".into(), plugin_path: None, exists: |p| p.exists() };
        assert!(!host.has(Tool::Qemu));
        let host = Host {
            path: std::env::join_paths(["/no/such/dir", "/bin", "/usr/bin"]).expect("path"),
            plugin_path: None,
            exists: |path| path.ends_with("qemu-system-x86_64"),
        };
        assert!(host.has(Tool::Qemu));
    }
}
